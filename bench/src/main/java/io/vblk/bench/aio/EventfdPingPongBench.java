package io.vblk.bench.aio;

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
 * Floor of {@link CrossThreadWakeBench}: the same round trips through the
 * same JNA binding ({@code LibC}, {@code EventNotifier}) with no AioContext.
 * QEMU's equivalent is a bare {@code event_notifier_set()} waking a thread
 * in {@code epoll_wait()}.
 *
 * <p>Shape, chosen to be the cross-thread wake minus the AioContext
 * machinery: the {@link EventfdEcho} thread sleeps in {@code epoll_wait}
 * on an eventfd; one operation writes the eventfd ({@code eventfd_write})
 * and spins until the echo thread, woken, has cleared the eventfd and bumped
 * a volatile counter. One blocking wake-up per operation, answered through a
 * volatile, exactly as in the cross-thread wake; a two-eventfd ping-pong with
 * both sides blocking would cost two wake-ups and not be comparable. The two
 * variants match those of the cross-thread wake: {@link #eventfdRoundTrip}
 * first spins until the echo thread has announced its sleep (timed), and
 * {@link #eventfdBlockedRoundTrip} waits, untimed, until the kernel also
 * shows it blocked. Each iteration prints how many of its wake-ups found
 * the echo thread really blocked ({@link BlockedWakeReport}).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgs = "--enable-native-access=ALL-UNNAMED")
public class EventfdPingPongBench {
    private EventfdEcho echo;
    private BlockedWakeReport report;
    private long sent; // benchmark thread only

    @Setup
    public void setUp() {
        echo = new EventfdEcho();
        awaitAnnouncedSleep(); // the echo thread runs its loop, so its kernel name is set
        report = new BlockedWakeReport(EventfdEcho.NAME);
    }

    @Setup(Level.Iteration)
    public void startIteration() {
        report.start(sent);
    }

    @TearDown(Level.Iteration)
    public void endIteration() {
        report.print(sent);
    }

    @TearDown
    public void tearDown() {
        report.close();
        echo.close();
    }

    @Benchmark
    public void eventfdRoundTrip() {
        awaitAnnouncedSleep();
        roundTrip();
    }

    @Benchmark
    public void eventfdBlockedRoundTrip(EchoBlocked blocked) {
        roundTrip();
    }

    private void roundTrip() {
        long target = ++sent;
        echo.kick();
        while (echo.echoed() != target) {
            Thread.onSpinWait();
        }
    }

    private void awaitAnnouncedSleep() {
        while (!echo.isAsleep()) {
            Thread.onSpinWait();
        }
    }

    /** Untimed, before each operation: the echo thread has announced its sleep and the kernel has it blocked. */
    @State(Scope.Thread)
    public static class EchoBlocked {
        @Setup(Level.Invocation)
        public void awaitBlocked(EventfdPingPongBench bench) {
            do {
                bench.awaitAnnouncedSleep();
            } while (!bench.report.peer().isBlocked());
        }
    }
}
