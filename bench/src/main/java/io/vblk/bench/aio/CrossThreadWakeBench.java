package io.vblk.bench.aio;

import io.vblk.aio.AioContext;
import io.vblk.aio.BottomHalf;
import io.vblk.aio.MainLoop;

import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Round trip of a BH scheduled from another thread into a sleeping
 * IOThread: QEMU's {@code qemu_bh_schedule()} from a vCPU or main-loop
 * thread, {@code aio_notify()} writing the context's eventfd because the
 * iothread announced itself in {@code notify_me}, the iothread waking from
 * {@code epoll_wait} in {@code aio_poll(ctx, true)}, {@code aio_notify_accept}
 * and {@code aio_bh_poll} running the BH. Its floor, the same shapes without
 * the AioContext, is {@link EventfdPingPongBench}.
 *
 * <p>One operation: schedule the BH, then spin until its callback has
 * bumped a volatile counter. The answer comes back through a volatile the
 * caller spins on, the cheapest honest signal: a second blocking wake-up
 * (eventfd, unpark) would double the kernel work and measure two wake-ups.
 * The IOThread has {@code poll-max-ns} 0, so it sleeps instead of
 * busy-polling. Two variants differ in how asleep the IOThread is when the
 * BH is scheduled:
 * <ul>
 * <li>{@link #wakeRoundTrip}: the operation first spins until the IOThread
 * has announced its sleep ({@link AioContext.Phase#SLEEPING}: notify_me
 * raised, lock released, about to enter epoll_wait), so every schedule
 * writes the eventfd (checked in tear-down); the score includes the
 * IOThread's way back to sleep. Whether the kick lands while the IOThread
 * is still entering epoll_wait (cheap: the kernel need not deschedule it)
 * or after the kernel has descheduled it (a real wake-up) is a race whose
 * outcome tends to persist for whole iterations, so the score may mix two
 * regimes; see the per-iteration report.
 * <li>{@link #wakeBlockedRoundTrip}: before each operation, untimed, the
 * benchmark waits until the kernel shows the IOThread blocked ({@code S} in
 * /proc) after announcing its sleep, so each operation is a real wake-up of
 * a descheduled thread (on a VM, of a halted vCPU).
 * </ul>
 * Each iteration prints how many of its wake-ups found the IOThread really
 * blocked ({@link BlockedWakeReport}).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgs = "--enable-native-access=ALL-UNNAMED")
public class CrossThreadWakeBench {
    private static final String IOTHREAD = "bench-wake";

    private MainLoop loop;
    private BlockedWakeReport report;
    private AioContext ctx;
    private BottomHalf bh;
    private long sent;            // benchmark thread only
    private volatile long ran;    // written by the IOThread only

    @Setup
    public void setUp() {
        loop = new MainLoop();
        ctx = loop.newIOThread(IOTHREAD, 0).context();
        bh = ctx.bhNew("bench-wake", () -> ran = ran + 1);
        awaitAnnouncedSleep(); // the IOThread runs its loop, so its kernel name is set
        report = new BlockedWakeReport(IOTHREAD);
    }

    @Setup(Level.Iteration)
    public void startIteration() {
        report.start(sent);
    }

    @TearDown(Level.Iteration)
    public void endIteration() {
        report.print(sent);
    }

    /** Checks, untimed, that every operation woke the IOThread through its eventfd. */
    @TearDown
    public void tearDown() {
        long writes = ctx.eventfdWrites();
        report.close();
        loop.close();
        if (writes < sent) {
            throw new IllegalStateException(sent + " wake-ups but only " + writes + " eventfd writes");
        }
    }

    @Benchmark
    public void wakeRoundTrip() {
        awaitAnnouncedSleep();
        roundTrip();
    }

    @Benchmark
    public void wakeBlockedRoundTrip(IOThreadBlocked blocked) {
        roundTrip();
    }

    private void roundTrip() {
        long target = ++sent;
        bh.schedule();
        while (ran != target) {
            Thread.onSpinWait();
        }
    }

    private void awaitAnnouncedSleep() {
        while (ctx.phase() != AioContext.Phase.SLEEPING) {
            Thread.onSpinWait();
        }
    }

    /** Untimed, before each operation: the IOThread has announced its sleep and the kernel has it blocked. */
    @State(Scope.Thread)
    public static class IOThreadBlocked {
        @Setup(Level.Invocation)
        public void awaitBlocked(CrossThreadWakeBench bench) {
            do {
                bench.awaitAnnouncedSleep();
            } while (!bench.report.peer().isBlocked());
        }
    }
}
