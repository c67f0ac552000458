package io.vblk.bench.mem;

import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.HostMemory;

import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The floor of a 64 KiB read on the {@code null} backend: moving 64 KiB into
 * guest RAM with nothing else around it. One op is one 64 KiB request's data:
 *
 * <ul>
 * <li>{@code copy}: {@code HostMemory.copy} (Unsafe.copyMemory, what a
 *     backend that has the data does) from one 64 KiB source into the next of
 *     {@code buffers} 64 KiB destinations in guest RAM, round robin;</li>
 * <li>{@code fill}: {@code HostMemory.fill} with zeroes (what the
 *     {@code null} driver's zero-filling read does) into the same rotation.</li>
 * </ul>
 * {@code buffers} = the queue depth of the end-to-end run, so the working set
 * is the guest's: 64 × 64 KiB = 4 MiB for QD 64. GB/s = 65536 / score.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgs = "--enable-native-access=ALL-UNNAMED")
public class Copy64kBench {
    static final int SIZE = 64 << 10;

    @Param({"64"})
    public int buffers;

    private GuestMemory ram;
    private long src;
    private long[] dst;
    private int next;

    @Setup
    public void setup() {
        ram = GuestMemory.allocate(0, (long) SIZE * (buffers + 1));
        src = ram.translate(0, SIZE);
        dst = new long[buffers];
        for (int i = 0; i < buffers; i++) {
            dst[i] = ram.translate((long) SIZE * (i + 1), SIZE);
        }
        for (int i = 0; i < SIZE; i += 8) {
            HostMemory.putLongLE(src + i, i * 0x9e3779b97f4a7c15L);
        }
    }

    @TearDown
    public void tearDown() {
        ram.close();
    }

    private long nextDst() {
        int i = next + 1;
        if (i == buffers) {
            i = 0;
        }
        next = i;
        return dst[i];
    }

    @Benchmark
    public long copy() {
        long d = nextDst();
        HostMemory.copy(src, d, SIZE);
        return d;
    }

    @Benchmark
    public long fill() {
        long d = nextDst();
        HostMemory.fill(d, SIZE, (byte) 0);
        return d;
    }
}
