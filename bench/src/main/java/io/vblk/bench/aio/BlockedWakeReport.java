package io.vblk.bench.aio;

/**
 * Per-iteration diagnostic of a wake-up benchmark: of the operations of the
 * iteration, how many found the peer thread really blocked in the kernel
 * (counted as its voluntary context switches; the peer blocks nowhere else).
 * Printed at the end of each iteration, so a run shows which regime each
 * iteration measured: a kick that lands while the peer is still entering
 * {@code epoll_wait} costs far less than waking a descheduled thread (on a
 * VM, a halted vCPU).
 */
final class BlockedWakeReport implements AutoCloseable {
    private final KernelThreadState peer;
    private final String name;
    private long ops0;
    private long switches0;

    BlockedWakeReport(String threadName) {
        this.name = threadName;
        this.peer = KernelThreadState.of(threadName);
    }

    KernelThreadState peer() {
        return peer;
    }

    /** At the start of an iteration, with the benchmark's operation count so far. */
    void start(long ops) {
        ops0 = ops;
        switches0 = peer.voluntarySwitches();
    }

    /** At the end of an iteration: prints the share of operations that woke a blocked peer. */
    void print(long ops) {
        long n = ops - ops0;
        long blocked = peer.voluntarySwitches() - switches0;
        System.out.printf("(%s blocked before %d of %d wake-ups: %.1f%%) ", name, blocked, n,
                n == 0 ? 0.0 : 100.0 * blocked / n);
    }

    @Override
    public void close() {
        peer.close();
    }
}
