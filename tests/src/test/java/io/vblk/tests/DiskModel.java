package io.vblk.tests;

import com.sun.jna.Memory;

import io.vblk.aio.AioContextLock;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What every 4 KiB block of a test disk must hold: the tag of the last write
 * that completed (0: never written, reads as zeroes; a negative tag: data a
 * test wrote host-side before the guest ran), and the tags of writes issued
 * but not yet completed — a read may see either while they are outstanding.
 * Every sector of a block carries its LBA and the tag (the guest's verify
 * pattern), so a lost, stale, torn or misplaced write shows.
 */
final class DiskModel {
    static final int BLOCK = 4096;
    static final int SECTORS = BLOCK / 512;

    private final long[] tags;
    private final Map<Integer, List<Long>> outstanding = new HashMap<>();
    /** Per block: {sequence number, tag} of every completed write, for reads that span several. */
    private final Map<Integer, List<long[]>> history = new HashMap<>();
    private long seq;
    /**
     * Migration epochs: a write issued before a hand-off and completed after
     * it may have reached the disk on either side of it (a request the guest
     * had queued but not yet kicked is processed only when that machine runs
     * again), so its block may hold any valid data until a write issued and
     * completed within one epoch settles it.
     */
    private volatile int epoch;
    private final Map<Long, Integer> issueEpoch = new HashMap<>();
    private final java.util.BitSet unknown = new java.util.BitSet();

    DiskModel(long bytes) {
        tags = new long[(int) (bytes / BLOCK)];
    }

    int blocks() {
        return tags.length;
    }

    synchronized long tag(int block) {
        return tags[block];
    }

    synchronized void set(int block, long tag) {
        tags[block] = tag;
        history.computeIfAbsent(block, k -> new ArrayList<>()).add(new long[] {0, tag});
    }

    /** A block whose order is uncertain may hold any tag ever written to it (or its initial contents). */
    private boolean everHeld(int block, long found) {
        if (found == 0 && history.getOrDefault(block, List.of()).stream().noneMatch(h -> h[0] == 0)) {
            return true; // never set host-side: zeroes at first
        }
        for (long[] h : history.getOrDefault(block, List.of())) {
            if (h[1] == found) {
                return true;
            }
        }
        List<Long> l = outstanding.get(block);
        return l != null && l.contains(found);
    }

    synchronized void issueWrite(int block, long tag) {
        outstanding.computeIfAbsent(block, k -> new ArrayList<>()).add(tag);
        issueEpoch.put(tag, epoch);
    }

    /** A hand-off between machines happened (see {@link #epoch}). */
    void nextEpoch() {
        epoch++;
    }

    synchronized int unknownBlocks() {
        return unknown.cardinality();
    }

    synchronized void completeWrite(int block, long tag, boolean ok) {
        List<Long> l = outstanding.get(block);
        if (l != null) {
            l.remove(tag);
            if (l.isEmpty()) {
                outstanding.remove(block);
            }
        }
        Integer issued = issueEpoch.remove(tag);
        if (ok) {
            tags[block] = tag;
            history.computeIfAbsent(block, k -> new ArrayList<>()).add(new long[] {++seq, tag});
            unknown.set(block, issued != null && issued != epoch);
        }
    }

    /** A point in the model's history: reads remember it when issued. */
    synchronized long seq() {
        return seq;
    }

    /**
     * Null if a read issued at {@code since} (when the block held {@code before})
     * may have returned {@code found}: any value the block had from then until now.
     */
    synchronized String checkRead(int block, long found, long since, long before) {
        if (found == before || found == tags[block] || (unknown.get(block) && everHeld(block, found))) {
            return null;
        }
        for (long[] h : history.getOrDefault(block, List.of())) {
            if (h[0] > since && h[1] == found) {
                return null;
            }
        }
        List<Long> l = outstanding.get(block);
        if (l != null && l.contains(found)) {
            return null;
        }
        return "block " + block + " read tag " + found + ", but it held " + before + " when the read was issued and "
                + tags[block] + " now" + (l == null ? "" : " (writes outstanding: " + l + ")");
    }

    /** Null if a block holding {@code found} (read now) is acceptable, else what was expected. */
    synchronized String check(int block, long found) {
        if (found == tags[block] || (unknown.get(block) && everHeld(block, found))) {
            return null;
        }
        List<Long> l = outstanding.get(block);
        if (l != null && l.contains(found)) {
            return null;
        }
        return "block " + block + " holds tag " + found + ", expected " + tags[block]
                + (l == null ? "" : " or one of " + l);
    }

    // ------------------------------------------------------------------ the pattern

    /** Stamps {@code block}'s pattern for {@code tag} into {@code b} at {@code off}. */
    static void stamp(byte[] b, int off, long block, long tag) {
        java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < SECTORS; i++) {
            long lba = block * SECTORS + i;
            int a = off + 512 * i;
            if (tag == 0) {
                java.util.Arrays.fill(b, a, a + 512, (byte) 0);
                continue;
            }
            bb.putLong(a, lba);
            bb.putLong(a + 8, tag);
            bb.putLong(a + 504, lba ^ tag);
        }
    }

    /** The tag a block's bytes carry (0 for zeroes), or a description of why they are not a valid block. */
    static Object decode(byte[] b, int off, long block) {
        java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        Long tag = null;
        for (int i = 0; i < SECTORS; i++) {
            long lba = block * SECTORS + i;
            int a = off + 512 * i;
            long l = bb.getLong(a);
            long t = bb.getLong(a + 8);
            long x = bb.getLong(a + 504);
            long sectorTag;
            if (l == 0 && t == 0 && x == 0) {
                sectorTag = 0;
            } else if (l == lba && x == (lba ^ t)) {
                sectorTag = t;
            } else {
                return "sector " + lba + " holds lba=" + l + " tag=" + t + " xor=" + x;
            }
            if (tag == null) {
                tag = sectorTag;
            } else if (tag != sectorTag) {
                return "block " + block + " is torn: tags " + tag + " and " + sectorTag;
            }
        }
        return tag;
    }

    /** Writes every block of {@code n} with the tag the model holds (host side; caller owns n's context). */
    static void writeAll(BlockNode n, DiskModel m, java.util.function.IntPredicate which) {
        int chunk = 256;
        byte[] buf = new byte[chunk * BLOCK];
        Memory mem = new Memory(buf.length);
        for (int first = 0; first < m.blocks(); first += chunk) {
            int cnt = Math.min(chunk, m.blocks() - first);
            boolean any = false;
            for (int i = 0; i < cnt; i++) {
                if (which.test(first + i)) {
                    any = true;
                }
            }
            if (!any) {
                continue;
            }
            for (int i = 0; i < cnt; i++) {
                int blk = first + i;
                if (!which.test(blk)) {
                    continue;
                }
                stamp(buf, i * BLOCK, blk, m.tag(blk));
                mem.write((long) i * BLOCK, buf, i * BLOCK, BLOCK);
                IoVec v = new IoVec(1);
                v.add(Memory.nativeValue(mem) + (long) i * BLOCK, BLOCK);
                int r = n.pwriteSync((long) blk * BLOCK, BLOCK, v, 0);
                if (r < 0) {
                    throw new AssertionError("writing block " + blk + " of '" + n.name() + "' failed: " + r);
                }
            }
        }
    }

    /** Reads every block of {@code n} and checks it against the model; returns the first problem or null. */
    String verifyAll(BlockNode n) {
        AioContextLock.Held h = n.context().inHomeThread() ? null : n.context().acquire();
        try {
            int chunk = 256;
            Memory mem = new Memory((long) chunk * BLOCK);
            byte[] buf = new byte[chunk * BLOCK];
            for (int first = 0; first < blocks(); first += chunk) {
                int cnt = Math.min(chunk, blocks() - first);
                IoVec v = new IoVec(1);
                v.add(Memory.nativeValue(mem), cnt * BLOCK);
                int r = n.preadSync((long) first * BLOCK, (long) cnt * BLOCK, v);
                if (r < 0) {
                    return "reading blocks from " + first + " failed: " + r;
                }
                mem.read(0, buf, 0, cnt * BLOCK);
                for (int i = 0; i < cnt; i++) {
                    Object t = decode(buf, i * BLOCK, first + i);
                    if (t instanceof String) {
                        return (String) t;
                    }
                    String e = check(first + i, (Long) t);
                    if (e != null) {
                        return e;
                    }
                }
            }
            return null;
        } finally {
            if (h != null) {
                h.close();
            }
        }
    }

    /** A raw image holding exactly what the model says (for qemu-img compare). */
    void writeReference(java.nio.file.Path p) throws java.io.IOException {
        byte[] b = new byte[BLOCK];
        try (java.nio.channels.FileChannel ch = java.nio.channels.FileChannel.open(p,
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE,
                java.nio.file.StandardOpenOption.TRUNCATE_EXISTING)) {
            for (int blk = 0; blk < blocks(); blk++) {
                long t = tag(blk);
                if (t == 0) {
                    continue;
                }
                stamp(b, 0, blk, t);
                ch.write(java.nio.ByteBuffer.wrap(b), (long) blk * BLOCK);
            }
            ch.truncate((long) blocks() * BLOCK);
            if (ch.size() < (long) blocks() * BLOCK) {
                ch.write(java.nio.ByteBuffer.wrap(new byte[1]), (long) blocks() * BLOCK - 1);
            }
        }
    }
}
