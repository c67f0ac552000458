package io.vblk.virtio;

import java.util.Arrays;
import java.util.Objects;

/**
 * One popped descriptor chain: QEMU's {@code VirtQueueElement}, reusable.
 * {@link VirtQueue#pop} fills it with the chain's head index and its
 * buffers (segments), each as a host address, a length and a direction.
 * Readable (driver-to-device) segments always come first, the queue enforces
 * that, so segment {@code i} is device-writable exactly when
 * {@code i >= readableCount()}.
 *
 * <p>Pooling: a device keeps elements (typically one inside each of its
 * request objects) and passes one to every pop; the segment arrays grow only
 * when a chain is longer than any this element held before, up to the queue
 * size, so steady-state popping allocates nothing. An element is owned by one
 * thread at a time: the queue's, from pop until it is pushed.
 */
public final class VirtQueueElement {
    private int head = -1;
    private int count;
    private int readable;
    private long readableBytes;
    private long writableBytes;
    private long[] addr;
    private int[] len;

    public VirtQueueElement() {
        this(8);
    }

    public VirtQueueElement(int initialCapacity) {
        int c = Math.max(1, initialCapacity);
        addr = new long[c];
        len = new int[c];
    }

    /** Index of the chain's head descriptor: what the used ring entry names. -1 when empty. */
    public int head() {
        return head;
    }

    public int segmentCount() {
        return count;
    }

    public int readableCount() {
        return readable;
    }

    public int writableCount() {
        return count - readable;
    }

    /** Total bytes the device may read. */
    public long readableBytes() {
        return readableBytes;
    }

    /** Total bytes the device may write: the upper bound of a used entry's length. */
    public long writableBytes() {
        return writableBytes;
    }

    public long hostAddress(int i) {
        Objects.checkIndex(i, count);
        return addr[i];
    }

    /** Length of segment {@code i} in bytes (always positive: the queue refuses empty buffers). */
    public int length(int i) {
        Objects.checkIndex(i, count);
        return len[i];
    }

    public boolean isWritable(int i) {
        Objects.checkIndex(i, count);
        return i >= readable;
    }

    /**
     * Gathers up to {@code n} bytes, starting {@code offset} bytes into the
     * readable part of the chain, into {@code dst}; returns how many were
     * copied (fewer when the readable part ends first).
     */
    public int copyFromReadable(long offset, byte[] dst, int dstOff, int n) {
        Objects.checkFromIndexSize(dstOff, n, dst.length);
        int done = 0;
        long skip = offset;
        for (int i = 0; i < readable && done < n; i++) {
            if (skip >= len[i]) {
                skip -= len[i];
                continue;
            }
            int c = (int) Math.min(len[i] - skip, n - done);
            HostMemory.copyToArray(addr[i] + skip, dst, dstOff + done, c);
            done += c;
            skip = 0;
        }
        return done;
    }

    /** Scatters up to {@code n} bytes of {@code src} into the writable part, from {@code offset}; returns bytes copied. */
    public int copyToWritable(long offset, byte[] src, int srcOff, int n) {
        Objects.checkFromIndexSize(srcOff, n, src.length);
        int done = 0;
        long skip = offset;
        for (int i = readable; i < count && done < n; i++) {
            if (skip >= len[i]) {
                skip -= len[i];
                continue;
            }
            int c = (int) Math.min(len[i] - skip, n - done);
            HostMemory.copyFromArray(src, srcOff + done, addr[i] + skip, c);
            done += c;
            skip = 0;
        }
        return done;
    }

    /** Like {@link #copyFromReadable(long, byte[], int, int)} into host memory (a bounce buffer). */
    public long copyFromReadable(long offset, long dstHostAddress, long n) {
        long done = 0;
        long skip = offset;
        for (int i = 0; i < readable && done < n; i++) {
            if (skip >= len[i]) {
                skip -= len[i];
                continue;
            }
            long c = Math.min(len[i] - skip, n - done);
            HostMemory.copy(addr[i] + skip, dstHostAddress + done, c);
            done += c;
            skip = 0;
        }
        return done;
    }

    /** Like {@link #copyToWritable(long, byte[], int, int)} from host memory. */
    public long copyToWritable(long offset, long srcHostAddress, long n) {
        long done = 0;
        long skip = offset;
        for (int i = readable; i < count && done < n; i++) {
            if (skip >= len[i]) {
                skip -= len[i];
                continue;
            }
            long c = Math.min(len[i] - skip, n - done);
            HostMemory.copy(srcHostAddress + done, addr[i] + skip, c);
            done += c;
            skip = 0;
        }
        return done;
    }

    /** Starts a new chain (pop); keeps the arrays. */
    void begin(int headIndex) {
        head = headIndex;
        count = 0;
        readable = 0;
        readableBytes = 0;
        writableBytes = 0;
    }

    /** Forgets the chain (a failed pop leaves the element empty). */
    public void clear() {
        begin(-1);
    }

    /** Appends a segment; the queue has checked direction order and the chain limit already. */
    void add(long hostAddress, int length, boolean writable) {
        if (count == addr.length) {
            int n = addr.length * 2;
            addr = Arrays.copyOf(addr, n);
            len = Arrays.copyOf(len, n);
        }
        addr[count] = hostAddress;
        len[count] = length;
        count++;
        if (writable) {
            writableBytes += length;
        } else {
            readable++;
            readableBytes += length;
        }
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("VirtQueueElement[head ").append(head).append(": ");
        for (int i = 0; i < count; i++) {
            sb.append(i == 0 ? "" : ", ").append(i < readable ? "R " : "W ").append(len[i]);
        }
        return sb.append(']').toString();
    }
}
