package io.vblk.bench.aio;

import io.vblk.aio.AioContext;
import io.vblk.aio.BottomHalf;

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
 * One schedule of an existing bottom half plus its dispatch by a
 * non-blocking poll of its own context, all in the context's home thread:
 * QEMU's {@code qemu_bh_schedule()} followed by {@code aio_poll(ctx, false)}
 * running it through {@code aio_bh_poll()}, the path of a completion that
 * defers work to a BH of its own iothread.
 *
 * <p>One operation = {@code bh.schedule(); ctx.poll(false)}. The schedule
 * finds the context already notified (no eventfd write, as in QEMU while
 * the loop is awake), so the op is the BH bookkeeping plus one
 * {@code epoll_wait(0)}. The loop runs inside the IOThread through
 * {@link InThreadBatch}. Run with {@code -prof gc}: scheduling a BH made
 * once must not allocate ({@code gc.alloc.rate.norm} near 0 B/op).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgs = "--enable-native-access=ALL-UNNAMED")
public class BhScheduleDispatchBench {
    private InThreadBatch batch;
    private AioContext ctx;
    private BottomHalf bh;
    private long runs; // home thread only

    @Setup
    public void setUp() {
        batch = new InThreadBatch("bench-bh", this::scheduleAndDispatchBatch);
        ctx = batch.context();
        bh = ctx.bhNew("bench-bh", () -> runs++);
    }

    @TearDown
    public void tearDown() {
        batch.close();
    }

    @Benchmark
    @OperationsPerInvocation(InThreadBatch.OPS)
    public void scheduleAndDispatch() {
        batch.run();
    }

    private void scheduleAndDispatchBatch() {
        AioContext c = ctx;
        BottomHalf b = bh;
        for (int i = 0; i < InThreadBatch.OPS; i++) {
            long before = runs;
            b.schedule();
            c.poll(false);
            if (runs != before + 1) {
                throw new IllegalStateException("poll(false) did not run the scheduled BH");
            }
        }
    }
}
