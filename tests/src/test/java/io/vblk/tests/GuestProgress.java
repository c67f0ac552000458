package io.vblk.tests;

import io.vblk.guest.LatencySink;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The simulated guest's completions as a test waits for them: a
 * {@link LatencySink} (recorded on the vCPUs) that counts completed requests
 * and completes a future once a count is reached, so a test says "1000 more
 * requests" instead of sleeping.
 */
public final class GuestProgress implements LatencySink {
    private record Waiter(long count, CompletableFuture<Void> reached) {
    }

    private final AtomicLong done = new AtomicLong();
    private final List<Waiter> waiters = new CopyOnWriteArrayList<>();

    @Override
    public void record(long nanos) {
        long n = done.incrementAndGet();
        for (Waiter w : waiters) {
            if (n >= w.count() && w.reached().complete(null)) {
                waiters.remove(w);
            }
        }
    }

    /** Completes once {@code n} requests in all have completed. */
    public CompletableFuture<Void> reach(long n) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        Waiter w = new Waiter(n, f);
        waiters.add(w);
        if (done.get() >= n && f.complete(null)) {
            waiters.remove(w);
        }
        return f;
    }

    /** Completes once {@code n} more requests than now have completed. */
    public CompletableFuture<Void> after(long n) {
        return reach(done.get() + n);
    }

    public long count() {
        return done.get();
    }
}
