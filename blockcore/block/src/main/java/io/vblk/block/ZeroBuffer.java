package io.vblk.block;

import com.sun.jna.Memory;

/**
 * One shared, read-only megabyte of zeroes: the source of write-zeroes
 * fallbacks and zero padding, so none allocates a buffer of its own.
 */
public final class ZeroBuffer {
    static final int SIZE = 1 << 20;
    private static final Memory ZEROES = new Memory(SIZE);

    static {
        ZEROES.clear();
    }

    private ZeroBuffer() {
    }

    static long address() {
        return com.sun.jna.Pointer.nativeValue(ZEROES);
    }

    /** An I/O vector of {@code bytes} zeroes, every segment pointing at the shared buffer. */
    static IoVec ioVec(long bytes) {
        IoVec v = new IoVec((int) Math.min(1024, bytes / SIZE + 1));
        addTo(v, bytes);
        return v;
    }

    /** Appends {@code bytes} zeroes to {@code v}, as segments of the shared buffer. */
    public static void addTo(IoVec v, long bytes) {
        long left = bytes;
        while (left > 0) {
            int n = (int) Math.min(SIZE, left);
            v.add(address(), n);
            left -= n;
        }
    }
}
