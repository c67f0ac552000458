package io.vblk.block.qcow2;

import com.sun.jna.Memory;

import java.nio.ByteBuffer;
import java.util.ArrayDeque;

/**
 * Reusable native bounce buffers of one size (a cluster for copy-on-write
 * and decompressed data, a little over two clusters for compressed input),
 * so the slow paths that need a buffer do not allocate one per request.
 * QEMU uses {@code qemu_try_blockalign} per request; a pool keeps the hot
 * paths of a Java heap free of native allocation churn. At most
 * {@code keep} idle buffers are retained.
 */
final class BufferPool {
    private final int size;
    private final int keep;
    private final ArrayDeque<Buffer> idle = new ArrayDeque<>();

    BufferPool(int size, int keep) {
        this.size = size;
        this.keep = keep;
    }

    Buffer take() {
        Buffer b = idle.pollFirst();
        return b != null ? b : new Buffer(size);
    }

    void give(Buffer b) {
        if (b != null && idle.size() < keep) {
            idle.addFirst(b);
        }
    }

    /** One native buffer with its address and a byte-buffer view (for the inflater). */
    static final class Buffer {
        final Memory mem;
        final long address;
        final ByteBuffer view;

        Buffer(int size) {
            mem = new Memory(size);
            address = Memory.nativeValue(mem);
            view = mem.getByteBuffer(0, size);
        }
    }
}
