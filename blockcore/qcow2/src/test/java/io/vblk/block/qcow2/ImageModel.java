package io.vblk.block.qcow2;

import java.util.Arrays;

/**
 * The expected contents of a disk after a sequence of operations, with the
 * qcow2 semantics of each: a write stores bytes, write-zeroes zeroes its
 * range, and a discard zeroes exactly the clusters it covers whole (a
 * partial cluster is left alone, as vblk's and QEMU's qcow2 discard do).
 */
final class ImageModel {
    final byte[] bytes;
    final int clusterSize;

    ImageModel(byte[] initial, int clusterSize) {
        this.bytes = initial;
        this.clusterSize = clusterSize;
    }

    void write(long off, byte[] data) {
        System.arraycopy(data, 0, bytes, (int) off, data.length);
    }

    void zero(long off, long len) {
        Arrays.fill(bytes, (int) off, (int) (off + len), (byte) 0);
    }

    void discard(long off, long len) {
        long end = off + len;
        long c = (off + clusterSize - 1) / clusterSize * clusterSize;
        for (; c < end; c += clusterSize) {
            long ce = Math.min(c + clusterSize, bytes.length);
            if (end >= ce) {
                Arrays.fill(bytes, (int) c, (int) ce, (byte) 0);
            }
        }
    }

    byte[] slice(long off, int len) {
        return Arrays.copyOfRange(bytes, (int) off, (int) off + len);
    }
}
