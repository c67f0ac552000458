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
        checkRange(offset, n);
        int i = 0;
        while (offset >= len[i]) {
            offset -= len[i];
            i++;
        }
        while (n > 0) {
            int take = (int) Math.min(n, len[i] - offset);
            PlatformDependent.copyMemory(src, base[i] + offset, take);
            src += take;
            n -= take;
            offset = 0;
            i++;
        }
    }

    /** Copies n bytes of this vector at {@code offset} to host memory at {@code dst}. */
    public void copyTo(long offset, long dst, long n) {
        checkRange(offset, n);
        int i = 0;
        while (offset >= len[i]) {
            offset -= len[i];
            i++;
        }
        while (n > 0) {
            int take = (int) Math.min(n, len[i] - offset);
            PlatformDependent.copyMemory(base[i] + offset, dst, take);
            dst += take;
            n -= take;
            offset = 0;
            i++;
        }
    }

    public void copyFromArray(byte[] src, int srcOff, long offset, int n) {
        checkRange(offset, n);
        int i = 0;
        while (offset >= len[i]) {
            offset -= len[i];
            i++;
        }
        while (n > 0) {
            int take = (int) Math.min(n, len[i] - offset);
            PlatformDependent.copyMemory(src, srcOff, base[i] + offset, take);
            srcOff += take;
            n -= take;
            offset = 0;
            i++;
        }
    }

    public void copyToArray(long offset, byte[] dst, int dstOff, int n) {
        checkRange(offset, n);
        int i = 0;
        while (offset >= len[i]) {
            offset -= len[i];
            i++;
        }
        while (n > 0) {
            int take = (int) Math.min(n, len[i] - offset);
            PlatformDependent.copyMemory(base[i] + offset, dst, dstOff, take);
            dstOff += take;
            n -= take;
            offset = 0;
            i++;
        }
    }

    /** Fills [offset, offset+n) with {@code value} (QEMU's {@code qemu_iovec_memset}). */
    public void fill(long offset, long n, byte value) {
        checkRange(offset, n);
        int i = 0;
        while (offset >= len[i]) {
            offset -= len[i];
            i++;
        }
        while (n > 0) {
            int take = (int) Math.min(n, len[i] - offset);
            PlatformDependent.setMemory(base[i] + offset, take, value);
            n -= take;
            offset = 0;
            i++;
        }
    }

    /** Whether [offset, offset+n) holds only zero bytes (used to detect zero writes). */
    public boolean isZero(long offset, long n) {
        checkRange(offset, n);
        int i = 0;
        while (offset >= len[i]) {
            offset -= len[i];
            i++;
        }
        while (n > 0) {
            int take = (int) Math.min(n, len[i] - offset);
            if (!isZero(base[i] + offset, take)) {
                return false;
            }
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
