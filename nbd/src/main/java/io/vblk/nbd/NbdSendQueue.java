package io.vblk.nbd;

import com.sun.jna.Memory;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.util.ArrayDeque;

/**
 * The replies of one connection waiting for the socket: QEMU serialises them
 * with {@code client->send_lock} and {@code qio_channel_writev_all}; here
 * they are pooled direct buffers queued in order and written with one
 * {@code sendmsg} of up to {@link #MAX_IOV} segments, never waiting: what the
 * kernel does not take stays queued until the socket is writable again.
 *
 * <p>Reply headers are written into a shared small segment at the tail, so a
 * burst of completions costs one segment and one system call; a read's
 * payload is queued as its own segment (no copy). Owned by the connection's
 * home context.
 */
final class NbdSendQueue {
    static final int MAX_IOV = 64;
    private static final int SMALL = 16 * 1024;
    private static final int MSGHDR_SIZE = 56;

    private final ByteBufAllocator alloc;
    private final ArrayDeque<ByteBuf> segments = new ArrayDeque<>();
    /** The tail segment headers are appended to, or null when the tail is a payload. */
    private ByteBuf small;
    private long pending;
    private final Memory msghdr = new Memory(MSGHDR_SIZE);
    private final Memory iov = new Memory(16L * MAX_IOV);

    NbdSendQueue(ByteBufAllocator alloc) {
        this.alloc = alloc;
        msghdr.clear();
    }

    /** A buffer at the tail with room for {@code bytes} more bytes; write to it, then it is queued. */
    ByteBuf small(int bytes) {
        if (small == null || small.writableBytes() < bytes) {
            small = alloc.directBuffer(Math.max(SMALL, bytes));
            segments.addLast(small);
        }
        return small;
    }

    /** Counts bytes written into the buffer {@link #small} returned. */
    void wrote(int bytes) {
        pending += bytes;
    }

    /** Queues {@code payload} (whose reference passes to the queue) after everything queued so far. */
    void payload(ByteBuf payload) {
        if (!payload.isReadable()) {
            payload.release();
            return;
        }
        segments.addLast(payload);
        pending += payload.readableBytes();
        small = null;
    }

    /** Copies {@code src}'s readable bytes to the tail (handshake replies). */
    void copy(ByteBuf src) {
        int n = src.readableBytes();
        if (n == 0) {
            return;
        }
        small(n).writeBytes(src);
        pending += n;
    }

    boolean isEmpty() {
        return pending == 0;
    }

    long pendingBytes() {
        return pending;
    }

    /**
     * Writes what the socket takes. Returns 0 when everything went, 1 when the
     * socket is full (wait for it to be writable), or -errno.
     */
    int flush(int fd) {
        while (pending > 0) {
            int n = 0;
            for (ByteBuf b : segments) {
                if (n == MAX_IOV) {
                    break;
                }
                int r = b.readableBytes();
                if (r == 0) {
                    continue;
                }
                iov.setLong(16L * n, b.memoryAddress() + b.readerIndex());
                iov.setLong(16L * n + 8, r);
                n++;
            }
            msghdr.setPointer(16, iov);
            msghdr.setLong(24, n);
            long w = SocketCalls.sendmsg(fd, msghdr, SocketCalls.MSG_NOSIGNAL | SocketCalls.MSG_DONTWAIT);
            if (w < 0) {
                int err = SocketCalls.errno();
                if (err == SocketCalls.EINTR) {
                    continue;
                }
                return err == SocketCalls.EAGAIN ? 1 : -err;
            }
            consume(w);
        }
        return 0;
    }

    private void consume(long w) {
        pending -= w;
        while (w > 0) {
            ByteBuf b = segments.peekFirst();
            int r = b.readableBytes();
            if (w < r) {
                b.skipBytes((int) w);
                return;
            }
            w -= r;
            if (b == small) {
                b.clear(); // the tail: reused for the next headers
                return;
            }
            segments.pollFirst().release();
        }
    }

    /** Drops everything queued (the connection is gone). */
    void clear() {
        ByteBuf b;
        while ((b = segments.pollFirst()) != null) {
            b.release();
        }
        small = null;
        pending = 0;
    }
}
