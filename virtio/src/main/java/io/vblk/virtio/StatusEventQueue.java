package io.vblk.virtio;

import java.util.ArrayDeque;

/**
 * Status-register writes waiting for the device's home context, delivered
 * in the order the driver made them. In QEMU the vCPU runs
 * {@code virtio_set_status} and {@code virtio_reset} itself under the BQL;
 * here register writes come from vCPU threads and their effects (device
 * hooks, the reset sequence) are handed to the home context (DESIGN.md
 * rule 2), so this queue keeps their order. Events are added from any
 * thread (this object's monitor, a leaf lock) and delivered in the home
 * thread only.
 */
final class StatusEventQueue {
    /** What delivery does with each event: the device's reset sequence and status-change hooks. */
    interface Sink {
        void reset(int oldStatus);

        void change(int oldStatus, int newStatus);
    }

    private static final class Event {
        final int old;
        final int now;
        final boolean reset;

        Event(int old, int now, boolean reset) {
            this.old = old;
            this.now = now;
            this.reset = reset;
        }
    }

    private final ArrayDeque<Event> events = new ArrayDeque<>();
    /** Home thread only: set while {@link #deliver} runs, so a nested call leaves the rest to it. */
    private boolean delivering;

    synchronized void addChange(int old, int now) {
        events.add(new Event(old, now, false));
    }

    synchronized void addReset(int old) {
        events.add(new Event(old, 0, true));
    }

    private synchronized Event poll() {
        return events.poll();
    }

    /** Delivers every pending event in order to {@code sink}; a nested call (from a hook) returns at once. */
    void deliver(Sink sink) {
        if (delivering) {
            return;
        }
        delivering = true;
        try {
            for (Event e; (e = poll()) != null;) {
                if (e.reset) {
                    sink.reset(e.old);
                } else {
                    sink.change(e.old, e.now);
                }
            }
        } finally {
            delivering = false;
        }
    }
}
