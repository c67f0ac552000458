package io.vblk.block.qcow2;

import com.sun.jna.Memory;

import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A table of big-endian 64-bit entries held whole in native memory with the
 * range of entries changed since it was last written: the L1 table and the
 * refcount table (QEMU's {@code s->l1_table} and {@code s->refcount_table}).
 * Keeping the on-disk byte order in memory lets a dirty range go to the
 * file with one {@code pwritev} straight from the table, no copy.
 */
final class NativeTable {
    final long fileOffset;
    final int entries;
    private final long bytes;
    private final Memory mem;
    private final ByteBuffer bb;
    private final IoVec iov = new IoVec(1);
    private int dirtyLo = Integer.MAX_VALUE;
    private int dirtyHi = -1;
    private int writingLo;
    private int writingHi;

    /** A table of {@code entries} entries stored at {@code fileOffset} in an on-disk area of {@code areaBytes}. */
    NativeTable(long fileOffset, int entries, long areaBytes) {
        this.fileOffset = fileOffset;
        this.entries = entries;
        this.bytes = Math.max(8, areaBytes);
        this.mem = new Memory(bytes);
        mem.clear();
        this.bb = mem.getByteBuffer(0, bytes).order(ByteOrder.BIG_ENDIAN);
    }

    long get(int i) {
        return bb.getLong(i << 3);
    }

    /** Sets entry {@code i} and marks it for the next {@link #writeDirty}. */
    void set(int i, long v) {
        bb.putLong(i << 3, v);
        dirtyLo = Math.min(dirtyLo, i);
        dirtyHi = Math.max(dirtyHi, i);
    }

    /** Sets an entry as loaded from disk (not dirty). */
    void load(int i, long v) {
        bb.putLong(i << 3, v);
    }

    boolean isDirty() {
        return dirtyHi >= 0;
    }

    long address() {
        return Memory.nativeValue(mem);
    }

    long bytes() {
        return bytes;
    }

    /** An I/O vector over the whole table area, for loading it or writing a new table in one go. */
    IoVec wholeIoVec() {
        iov.reset();
        iov.add(address(), (int) bytes);
        return iov;
    }

    /**
     * Writes the dirty entries, widened to whole 512-byte sectors within the
     * table area, and clears the dirty range; {@link #writeFailed()} restores it.
     */
    void writeDirty(BlockNode file, BlockCompletion cb) {
        writingLo = dirtyLo;
        writingHi = dirtyHi;
        long from = ((long) dirtyLo << 3) & ~511L;
        long to = Math.min(bytes, (((long) dirtyHi + 1) * 8 + 511) & ~511L);
        dirtyLo = Integer.MAX_VALUE;
        dirtyHi = -1;
        iov.reset();
        iov.add(address() + from, (int) (to - from));
        file.pwritev(fileOffset + from, to - from, iov, 0, cb);
    }

    void writeFailed() {
        dirtyLo = Math.min(dirtyLo, writingLo);
        dirtyHi = Math.max(dirtyHi, writingHi);
    }
}
