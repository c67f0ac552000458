package io.vblk.bench.aio;

import io.vblk.aio.AioContext;

import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * One {@code poll(false)} of an idle context from its home thread: QEMU's
 * {@code aio_poll(ctx, false)} when nothing is pending, the fixed cost every
 * event-loop iteration pays (lock, bookkeeping, {@code epoll_wait(0)}, BH,
 * handler and timer checks). The context has no handlers, BHs or timers
 * besides its own notifier; each poll must report no progress. The loop
 * runs inside the IOThread through {@link InThreadBatch}. Its floor is
 * {@link EpollWaitIdleBench}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgs = "--enable-native-access=ALL-UNNAMED")
public class PollIdleBench {
    private InThreadBatch batch;
    private AioContext ctx;

    @Setup
    public void setUp() {
        batch = new InThreadBatch("bench-poll", this::pollBatch);
        ctx = batch.context();
    }

    @TearDown
    public void tearDown() {
        batch.close();
    }

    @Benchmark
    @OperationsPerInvocation(InThreadBatch.OPS)
    public void pollIdle() {
        batch.run();
    }

    private void pollBatch() {
        AioContext c = ctx;
        for (int i = 0; i < InThreadBatch.OPS; i++) {
            if (c.poll(false)) {
                throw new IllegalStateException("poll(false) of an idle context made progress");
            }
        }
    }
}
