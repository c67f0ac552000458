package io.vblk.block;

import io.netty.util.internal.PlatformDependent;

import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * A scatter/gather list over native memory: QEMU's {@code QEMUIOVector}.
 * Segments are (host address, length) pairs, so a request's data can point
 * straight into guest RAM and reach the host file with one
 * {@code preadv}/{@code pwritev}, no copy. Reusable: {@link #reset()} keeps
 * the arrays, so a pooled request carries one without allocating.
 */
public final class IoVec {
    static {
        if (!PlatformDependent.hasUnsafe()) {
            throw new ExceptionInInitializerError("vblk needs direct memory access (sun.misc.Unsafe through Netty); "
                    + "run on a standard OpenJDK without -Dio.netty.noUnsafe");
        }
    }

    private long[] base;
    private int[] len;
    private int count;
    private long size;

    public IoVec() {
        this(4);
    }

    public IoVec(int capacity) {
        base = new long[Math.max(1, capacity)];
        len = new int[Math.max(1, capacity)];
    }

    /** A one-segment vector over a direct buffer's remaining bytes (tests, bounce buffers). */
    public static IoVec of(ByteBuffer direct) {
        if (!direct.isDirect()) {
            throw new IllegalArgumentException("IoVec needs a direct buffer");
        }
        IoVec v = new IoVec(1);
        v.add(PlatformDependent.directBufferAddress(direct) + direct.position(), direct.remaining());
        return v;
    }

    public void reset() {
        count = 0;
        size = 0;
    }

    public void add(long address, int length) {
        if (length < 0) {
            throw new IllegalArgumentException("negative segment length " + length);
        }
        if (count == base.length) {
            base = Arrays.copyOf(base, count * 2);
            len = Arrays.copyOf(len, count * 2);
        }
        base[count] = address;
        len[count] = length;
        count++;
        size += length;
    }

    public int count() {
        return count;
    }

    public long size() {
        return size;
    }

    public long address(int i) {
        return base[i];
    }

    public int length(int i) {
        return len[i];
    }

    /** Makes {@code dst} the sub-range [offset, offset+n) of this vector (QEMU's {@code qemu_iovec_concat}). */
    public void sliceInto(IoVec dst, long offset, long n) {
        checkRange(offset, n);
        dst.reset();
        int i = 0;
        while (offset >= len[i]) {
            offset -= len[i];
            i++;
        }
        while (n > 0) {
            int take = (int) Math.min(n, len[i] - offset);
            dst.add(base[i] + offset, take);
            n -= take;
            offset = 0;
            i++;
        }
    }

    /** Copies n bytes from host memory at {@code src} into this vector at {@code offset}. */
    public void copyFrom(long src, long offset, long n) {
        walk(OP_FROM_ADDRESS, offset, n, src, null, 0, (byte) 0);
    }

    /** Copies n bytes of this vector at {@code offset} to host memory at {@code dst}. */
    public void copyTo(long offset, long dst, long n) {
        walk(OP_TO_ADDRESS, offset, n, dst, null, 0, (byte) 0);
    }

    public void copyFromArray(byte[] src, int srcOff, long offset, int n) {
        walk(OP_FROM_ARRAY, offset, n, 0, src, srcOff, (byte) 0);
    }

    public void copyToArray(long offset, byte[] dst, int dstOff, int n) {
        walk(OP_TO_ARRAY, offset, n, 0, dst, dstOff, (byte) 0);
    }

    /** Fills [offset, offset+n) with {@code value} (QEMU's {@code qemu_iovec_memset}). */
    public void fill(long offset, long n, byte value) {
        walk(OP_FILL, offset, n, 0, null, 0, value);
    }

    /** Whether [offset, offset+n) holds only zero bytes (used to detect zero writes). */
    public boolean isZero(long offset, long n) {
        return walk(OP_IS_ZERO, offset, n, 0, null, 0, (byte) 0);
    }

    private static final int OP_FROM_ADDRESS = 0;
    private static final int OP_TO_ADDRESS = 1;
    private static final int OP_FROM_ARRAY = 2;
    private static final int OP_TO_ARRAY = 3;
    private static final int OP_FILL = 4;
    private static final int OP_IS_ZERO = 5;

    /**
     * Applies one operation to [offset, offset+n) segment by segment; the
     * address or array position advances with it. Returns false only for a
     * zero test that found a non-zero byte.
     */
    private boolean walk(int op, long offset, long n, long address, byte[] array, int arrayOff, byte value) {
        checkRange(offset, n);
        int i = 0;
        while (offset >= len[i] && n > 0) {
            offset -= len[i];
            i++;
        }
        while (n > 0) {
            int take = (int) Math.min(n, len[i] - offset);
            long seg = base[i] + offset;
            switch (op) {
                case OP_FROM_ADDRESS:
                    PlatformDependent.copyMemory(address, seg, take);
                    break;
                case OP_TO_ADDRESS:
                    PlatformDependent.copyMemory(seg, address, take);
                    break;
                case OP_FROM_ARRAY:
                    PlatformDependent.copyMemory(array, arrayOff, seg, take);
                    break;
                case OP_TO_ARRAY:
                    PlatformDependent.copyMemory(seg, array, arrayOff, take);
                    break;
                case OP_FILL:
                    PlatformDependent.setMemory(seg, take, value);
                    break;
                default:
                    if (!isZero(seg, take)) {
                        return false;
                    }
                    break;
            }
            address += take;
            arrayOff += take;
            n -= take;
            offset = 0;
            i++;
        }
        return true;
    }

    static boolean isZero(long address, int n) {
        int j = 0;
        for (; j + 8 <= n; j += 8) {
            if (PlatformDependent.getLong(address + j) != 0) {
                return false;
            }
        }
        for (; j < n; j++) {
            if (PlatformDependent.getByte(address + j) != 0) {
                return false;
            }
        }
        return true;
    }

    private void checkRange(long offset, long n) {
        if (offset < 0 || n < 0 || offset + n > size) {
            throw new IndexOutOfBoundsException("range [" + offset + ", +" + n + ") outside an I/O vector of " + size + " bytes");
        }
    }

    @Override
    public String toString() {
        return "IoVec(" + count + " segments, " + size + " bytes)";
    }
}
