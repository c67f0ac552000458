package io.vblk.aio;

import java.util.Arrays;

/**
 * The armed timers of one context, as a binary min-heap ordered by
 * (deadline, arming order): QEMU's {@code QEMUTimerList}. Timers can be armed
 * from any thread (a short lock guards the heap); only the home thread runs
 * them. {@link #nextDeadline} is published for the poller without the lock.
 */
final class TimerList {
    private final AioContext ctx;
    private AioTimer[] heap = new AioTimer[16];
    private int size;
    private long seq;
    /** Earliest deadline, or Long.MAX_VALUE when none is armed. */
    volatile long nextDeadline = Long.MAX_VALUE;

    TimerList(AioContext ctx) {
        this.ctx = ctx;
    }

    void mod(AioTimer t, long deadline) {
        boolean earliest;
        synchronized (this) {
            if (t.heapIndex >= 0) {
                removeAt(t.heapIndex);
            }
            t.deadline = deadline;
            t.seq = seq++;
            if (size == heap.length) {
                heap = Arrays.copyOf(heap, size * 2);
            }
            heap[size] = t;
            t.heapIndex = size;
            size++;
            siftUp(t.heapIndex);
            earliest = heap[0] == t;
            nextDeadline = heap[0].deadline;
        }
        if (earliest && !ctx.inHomeThread()) {
            ctx.aioNotify(); // a sleeping poller must recompute its timeout
        }
    }

    synchronized void del(AioTimer t) {
        if (t.heapIndex >= 0) {
            removeAt(t.heapIndex);
            nextDeadline = size == 0 ? Long.MAX_VALUE : heap[0].deadline;
        }
    }

    synchronized boolean isPending(AioTimer t) {
        return t.heapIndex >= 0;
    }

    synchronized int size() {
        return size;
    }

    /** Nanoseconds until the earliest deadline (0 if due), or -1 if no timer is armed. */
    long timeoutNs(long now) {
        long d = nextDeadline;
        if (d == Long.MAX_VALUE) {
            return -1;
        }
        return Math.max(0, d - now);
    }

    /** Runs every timer due by now; returns whether any ran. Home thread only. */
    boolean run() {
        if (nextDeadline == Long.MAX_VALUE) {
            return false; // nothing armed: not even a clock read
        }
        long now = System.nanoTime();
        if (nextDeadline > now) {
            return false;
        }
        boolean progress = false;
        for (;;) {
            AioTimer due;
            synchronized (this) {
                if (size == 0 || heap[0].deadline > now) {
                    nextDeadline = size == 0 ? Long.MAX_VALUE : heap[0].deadline;
                    return progress;
                }
                due = heap[0];
                removeAt(0);
                nextDeadline = size == 0 ? Long.MAX_VALUE : heap[0].deadline;
            }
            progress = true;
            ctx.runCallback(due.callback, due.name);
        }
    }

    private boolean less(AioTimer a, AioTimer b) {
        return a.deadline != b.deadline ? a.deadline - b.deadline < 0 : a.seq < b.seq;
    }

    private void removeAt(int i) {
        AioTimer t = heap[i];
        t.heapIndex = -1;
        size--;
        if (i != size) {
            AioTimer last = heap[size];
            heap[i] = last;
            last.heapIndex = i;
            heap[size] = null;
            siftDown(i);
            siftUp(last.heapIndex);
        } else {
            heap[size] = null;
        }
    }

    private void siftUp(int i) {
        AioTimer t = heap[i];
        while (i > 0) {
            int p = (i - 1) >>> 1;
            if (!less(t, heap[p])) {
                break;
            }
            heap[i] = heap[p];
            heap[i].heapIndex = i;
            i = p;
        }
        heap[i] = t;
        t.heapIndex = i;
    }

    private void siftDown(int i) {
        AioTimer t = heap[i];
        for (;;) {
            int c = 2 * i + 1;
            if (c >= size) {
                break;
            }
            if (c + 1 < size && less(heap[c + 1], heap[c])) {
                c++;
            }
            if (!less(heap[c], t)) {
                break;
            }
            heap[i] = heap[c];
            heap[i].heapIndex = i;
            i = c;
        }
        heap[i] = t;
        t.heapIndex = i;
    }
}
