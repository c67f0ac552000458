package io.vblk.dataplane;

import static io.vblk.virtio.blk.VirtioBlkAbi.SECTOR;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.List;

/**
 * The reference model of a disk for the randomized test: its bytes as the
 * guest expects them, plus the sectors whose content is undefined after a
 * DISCARD (they may read as their old bytes or as zeroes; the first read
 * settles it). Guest threads reserve the range of each request before
 * submitting it so that no two requests in flight overlap when one of them
 * changes the disk: the expected result of every request is then exact.
 * Thread-safe.
 */
final class DiskModel {

    private final byte[] bytes;
    private final BitSet discarded = new BitSet();
    private final List<long[]> reserved = new ArrayList<>(); // {start, end, write}

    DiskModel(byte[] initial) {
        this.bytes = initial.clone();
    }

    long sectors() {
        return bytes.length / SECTOR;
    }

    /** Reserves sectors [start, start + n); false if it conflicts with a request in flight. */
    synchronized boolean tryReserve(long start, long n, boolean write) {
        for (long[] r : reserved) {
            if (start < r[1] && start + n > r[0] && (write || r[2] != 0)) {
                return false;
            }
        }
        reserved.add(new long[] {start, start + n, write ? 1 : 0});
        return true;
    }

    synchronized void release(long start, long n) {
        for (int i = 0; i < reserved.size(); i++) {
            long[] r = reserved.get(i);
            if (r[0] == start && r[1] == start + n) {
                reserved.remove(i);
                return;
            }
        }
        throw new IllegalStateException("no reservation of " + n + " sectors at " + start);
    }

    synchronized void write(long sector, byte[] data) {
        System.arraycopy(data, 0, bytes, (int) (sector * SECTOR), data.length);
        discarded.clear((int) sector, (int) (sector + data.length / SECTOR));
    }

    synchronized void zero(long sector, long n) {
        Arrays.fill(bytes, (int) (sector * SECTOR), (int) ((sector + n) * SECTOR), (byte) 0);
        discarded.clear((int) sector, (int) (sector + n));
    }

    synchronized void discard(long sector, long n) {
        discarded.set((int) sector, (int) (sector + n));
    }

    /**
     * Checks what the device returned for sectors [sector, sector + n): each
     * sector must equal the model, or for a discarded sector the model or
     * zeroes (which then becomes the model). Returns a description of the first
     * mismatch, or null.
     */
    synchronized String checkRead(long sector, byte[] got) {
        int n = got.length / SECTOR;
        for (int i = 0; i < n; i++) {
            int off = (int) ((sector + i) * SECTOR);
            boolean same = Arrays.equals(got, i * SECTOR, (i + 1) * SECTOR, bytes, off, off + SECTOR);
            if (same) {
                continue;
            }
            if (discarded.get((int) sector + i) && isZero(got, i * SECTOR, SECTOR)) {
                Arrays.fill(bytes, off, off + SECTOR, (byte) 0);
                discarded.clear((int) sector + i);
                continue;
            }
            int b = 0;
            while (got[i * SECTOR + b] == bytes[off + b]) {
                b++;
            }
            return String.format("sector %d byte %d: read 0x%02x, model 0x%02x%s", sector + i, b,
                    got[i * SECTOR + b] & 0xff, bytes[off + b] & 0xff,
                    discarded.get((int) sector + i) ? " (discarded: zero also allowed)" : "");
        }
        return null;
    }

    /** Checks the whole disk; returns a description of the first mismatch, or null. */
    String checkDisk(byte[] disk) {
        if (disk.length != bytes.length) {
            return "disk is " + disk.length + " bytes, model " + bytes.length;
        }
        return checkRead(0, disk);
    }

    static boolean isZero(byte[] b, int off, int len) {
        for (int i = off; i < off + len; i++) {
            if (b[i] != 0) {
                return false;
            }
        }
        return true;
    }
}
