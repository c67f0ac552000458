package io.vblk.aio;

import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Bounds a wait and turns expiry into a {@link HangDetectedException} carrying
 * a dump of every event loop of the machine: thread state and stack,
 * notify_me, notified, pending BHs, handlers, lock holder and depth, and the
 * diagnostic sources registered with the {@link MainLoop} (in-flight counts,
 * queue state). Nothing here sleeps: the wait is the awaited object's own.
 */
public final class Watchdog {
    private final MainLoop loop;
    private final Duration deadline;

    public Watchdog(MainLoop loop, Duration deadline) {
        this.loop = loop;
        this.deadline = deadline;
    }

    public Duration deadline() {
        return deadline;
    }

    /** Waits for {@code f}; its failure is rethrown unwrapped (unchecked). */
    public <T> T await(String what, Future<T> f) {
        try {
            return f.get(deadline.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            throw hang(what);
        } catch (ExecutionException e) {
            throw rethrow(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CompletionException("interrupted while waiting for " + what, e);
        }
    }

    public void await(String what, CountDownLatch latch) {
        try {
            if (!latch.await(deadline.toNanos(), TimeUnit.NANOSECONDS)) {
                throw hang(what);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CompletionException("interrupted while waiting for " + what, e);
        }
    }

    /** Runs {@code task} in the main loop and waits for it. */
    public <T> T call(String what, Callable<T> task) {
        return await(what, loop.submit(what, task));
    }

    public void run(String what, Runnable task) {
        await(what, loop.run(what, task));
    }

    /** The exception for an expired wait, with the dump taken now. */
    public HangDetectedException hang(String what) {
        return new HangDetectedException(what, deadline, loop.dump());
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException) {
            return (RuntimeException) t;
        }
        if (t instanceof Error) {
            throw (Error) t;
        }
        return new CompletionException(t);
    }
}
