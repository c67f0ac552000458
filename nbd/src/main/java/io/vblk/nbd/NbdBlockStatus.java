package io.vblk.nbd;

import io.netty.buffer.ByteBuf;

import io.vblk.block.BlockNode;
import io.vblk.block.BlockStatus;
import io.vblk.block.ChildRole;

/**
 * The {@code base:allocation} context: the extents of a range as
 * {@code NBD_STATE_HOLE}/{@code NBD_STATE_ZERO} flags, QEMU's
 * {@code blockstatus_to_extents} over {@code bdrv_block_status_above}
 * (nbd/server.c). A range this node leaves unallocated is asked of its
 * backing chain; past a shorter backing file it reads as zeroes. A range
 * is a hole unless it holds data, and zero if it reads as zeroes.
 * Runs in the node's home context; qcow2 may load an L2 table, polling.
 */
final class NbdBlockStatus {
    /** Extents per reply at most (QEMU caps them too, so one request cannot make a huge reply). */
    static final int MAX_EXTENTS = 16 * 1024;

    private NbdBlockStatus() {
    }

    /**
     * Writes the descriptors (u32 length, u32 flags) of [offset, offset+length)
     * to {@code out}, merging neighbours with equal flags, at most
     * {@code maxExtents} of them; returns how many bytes they cover.
     */
    static long extents(BlockNode node, long offset, long length, int maxExtents, ByteBuf out) {
        long[] got = new long[2];
        long covered = 0;
        int n = 0;
        int lastFlags = -1;
        int lastLenAt = -1;
        long lastLen = 0;
        while (covered < length) {
            statusAbove(node, offset + covered, length - covered, got);
            long bytes = got[0];
            int flags = (int) got[1];
            if (flags == lastFlags && lastLen + bytes <= 0xFFFFFFFFL) {
                lastLen += bytes;
                out.setInt(lastLenAt, (int) lastLen);
            } else {
                if (n == maxExtents) {
                    break;
                }
                lastLenAt = out.writerIndex();
                out.writeInt((int) bytes).writeInt(flags);
                lastFlags = flags;
                lastLen = bytes;
                n++;
            }
            covered += bytes;
        }
        return covered;
    }

    /** Writes {bytes, flags} of the run at {@code offset}, through the backing chain, to {@code res}; bytes &gt; 0. */
    private static void statusAbove(BlockNode top, long offset, long bytes, long[] res) {
        BlockNode n = top;
        long len = bytes;
        while (true) {
            if (offset >= n.length()) {
                res[0] = len;
                res[1] = NbdProto.STATE_HOLE | NbdProto.STATE_ZERO;
                return;
            }
            BlockStatus st = n.blockStatus(offset, Math.min(len, n.length() - offset));
            long b = st.bytes() > 0 ? Math.min(len, st.bytes()) : Math.min(len, n.length() - offset);
            BlockNode backing = n.child(ChildRole.BACKING);
            if (st.allocated() || backing == null) {
                int flags = (st.data() ? 0 : NbdProto.STATE_HOLE) | (st.zero() ? NbdProto.STATE_ZERO : 0);
                res[0] = b;
                res[1] = flags;
                return;
            }
            n = backing;
            len = b;
        }
    }
}
