package io.vblk.bench.aio;

import io.vblk.aio.EventNotifier;
import io.vblk.aio.LibC;

import java.util.concurrent.TimeUnit;

import com.sun.jna.Memory;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Floor of {@link PollIdleBench}: one bare {@code epoll_wait(epfd, events,
 * 128, 0)} through {@code LibC.epoll_wait} on an idle epoll instance, the
 * one system call an idle {@code aio_poll(ctx, false)} makes (QEMU's
 * {@code fdmon_epoll_wait} with timeout 0). As in an AioContext, the epoll
 * instance watches one idle eventfd and the event buffer holds 128 events.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgs = "--enable-native-access=ALL-UNNAMED")
public class EpollWaitIdleBench {
    private static final int MAX_EVENTS = 128; // as AioContext

    private EventNotifier idle;
    private int epfd;
    private Memory events;

    @Setup
    public void setUp() {
        idle = new EventNotifier();
        epfd = LibC.check(LibC.epoll_create1(LibC.EPOLL_CLOEXEC), "epoll_create1");
        Memory ev = new Memory(LibC.EPOLL_EVENT_SIZE);
        ev.setInt(0, LibC.EPOLLIN);
        ev.setLong(4, -1L);
        LibC.check(LibC.epoll_ctl(epfd, LibC.EPOLL_CTL_ADD, idle.fd(), ev), "epoll_ctl(ADD)");
        events = new Memory((long) MAX_EVENTS * LibC.EPOLL_EVENT_SIZE);
    }

    @TearDown
    public void tearDown() {
        LibC.close(epfd);
        idle.close();
    }

    @Benchmark
    public int epollWaitZero() {
        return LibC.epoll_wait(epfd, events, MAX_EVENTS, 0);
    }
}
