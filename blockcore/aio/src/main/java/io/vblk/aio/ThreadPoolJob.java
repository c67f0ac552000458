package io.vblk.aio;

/**
 * Blocking work for the {@link ThreadPool}: QEMU's {@code ThreadPoolElement}.
 * {@link #work()} runs on a worker thread; {@link #complete(int)} then runs
 * in the context that submitted the job. Subclasses are meant to be reused
 * (one per request slot), so submitting costs no allocation.
 */
public abstract class ThreadPoolJob {
    AioContext ctx;
    ThreadPoolJob next;
    int ret;

    /** The blocking part, on a worker: returns a non-negative result or {@code -errno}. */
    protected abstract int work();

    /** Runs in the submitting context with {@link #work()}'s result. */
    protected abstract void complete(int ret);
}
