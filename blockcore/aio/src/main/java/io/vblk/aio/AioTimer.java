package io.vblk.aio;

/**
 * A one-shot timer on the monotonic clock ({@link System#nanoTime()}),
 * run by its context's home thread: QEMU's {@code QEMUTimer} on
 * {@code QEMU_CLOCK_REALTIME}. Reusable: {@link #modNs} re-arms it, so a
 * request object can own one and re-arm it per request without allocation.
 */
public final class AioTimer {
    final AioContext ctx;
    final Runnable callback;
    final String name;
    /** Deadline in nanoTime units; meaningful only while {@code heapIndex >= 0}. */
    long deadline;
    /** Position in the context's timer heap, -1 when not armed. Guarded by the timer list lock. */
    int heapIndex = -1;
    /** Arming order, to break deadline ties first-armed-first. */
    long seq;

    AioTimer(AioContext ctx, String name, Runnable callback) {
        this.ctx = ctx;
        this.name = name;
        this.callback = callback;
    }

    /** Arms (or re-arms) the timer to fire at {@code deadlineNanos} ({@link System#nanoTime()} units). */
    public void modNs(long deadlineNanos) {
        ctx.timers.mod(this, deadlineNanos);
    }

    /** Arms the timer to fire {@code delayNanos} from now. */
    public void modInNs(long delayNanos) {
        modNs(System.nanoTime() + delayNanos);
    }

    /** Disarms the timer; it will not fire until re-armed. */
    public void del() {
        ctx.timers.del(this);
    }

    public boolean isPending() {
        return ctx.timers.isPending(this);
    }

    @Override
    public String toString() {
        return name;
    }
}
