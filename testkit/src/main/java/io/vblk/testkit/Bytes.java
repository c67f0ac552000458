package io.vblk.testkit;

import java.util.Arrays;

/** Byte patterns and little-endian packing for what a test driver writes into guest RAM. */
public final class Bytes {
    private Bytes() {
    }

    /** {@code len} bytes of a cheap pattern that differs with {@code seed}. */
    public static byte[] pattern(int len, int seed) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++) {
            b[i] = (byte) (seed + i * 7);
        }
        return b;
    }

    public static byte[] concat(byte[]... parts) {
        int n = Arrays.stream(parts).mapToInt(p -> p.length).sum();
        byte[] out = new byte[n];
        int o = 0;
        for (byte[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }

    /** Stores the low {@code n} bytes of {@code v} at {@code off}, little-endian (the virtio byte order). */
    public static void putLE(byte[] b, int off, long v, int n) {
        for (int i = 0; i < n; i++) {
            b[off + i] = (byte) (v >>> (8 * i));
        }
    }
}
