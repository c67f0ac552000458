package io.vblk.aio;

import com.sun.jna.Memory;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The buffers of one thread's waits in an {@link FdMon}: one per thread that
 * may wait at the same time (the home thread, and a foreign lock holder while
 * the home thread sleeps unlocked). The ready list is laid out as packed
 * x86-64 {@code struct epoll_event}s whatever the monitor, so dispatch reads
 * one format. Poll mode also keeps its {@code struct pollfd} array here, as
 * QEMU keeps it thread-local ({@code pollfds}, {@code nodes} in
 * util/fdmon-poll.c): ppoll runs without any lock, and two threads may be in
 * it at once. Nothing is allocated per wait; the poll set is rebuilt only when
 * the registrations changed.
 */
final class FdMonEvents {
    static final int MAX_EVENTS = 128;

    final Memory mem = new Memory((long) MAX_EVENTS * LibC.EPOLL_EVENT_SIZE);
    private final ByteBuffer buf = mem.getByteBuffer(0, mem.size()).order(ByteOrder.LITTLE_ENDIAN);

    // ---- poll mode only (FdMonPoll), owned by the thread that waits with this buffer
    /** The pollfd array and its view; grown (reallocated) only when the set outgrows it. */
    Memory pollfds;
    ByteBuffer pollBuf;
    /** The registration tag of each pollfd (QEMU's {@code nodes[]}). */
    long[] pollTags = new long[0];
    /** Entries of the pollfd array in use. */
    int npfd;
    /** The registration version the pollfd array was built from; -1: never built. */
    int builtVersion = -1;
    /** Where the next scan for ready entries starts, so more than MAX_EVENTS ready fds take turns. */
    int scanStart;
    /** ppoll's timeout. */
    final Memory timespec = new Memory(16);

    /** The registration tag of ready event {@code i}. */
    long data(int i) {
        return buf.getLong(i * LibC.EPOLL_EVENT_SIZE + 4);
    }

    /** The EPOLL* bits of ready event {@code i}. */
    int events(int i) {
        return buf.getInt(i * LibC.EPOLL_EVENT_SIZE);
    }

    /** Writes ready event {@code i} (poll mode's translation of a pollfd's revents). */
    void put(int i, int events, long data) {
        buf.putInt(i * LibC.EPOLL_EVENT_SIZE, events);
        buf.putLong(i * LibC.EPOLL_EVENT_SIZE + 4, data);
    }

    /** Whether one of the first {@code n} ready events carries {@code data}. */
    boolean contains(int n, long data) {
        for (int i = 0; i < n; i++) {
            if (data(i) == data) {
                return true;
            }
        }
        return false;
    }
}
