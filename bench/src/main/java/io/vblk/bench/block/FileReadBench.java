package io.vblk.bench.block;

import io.vblk.aio.AioContext;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockCompletion;
import io.vblk.block.IoVec;

import com.sun.jna.Memory;

import io.netty.util.internal.PlatformDependent;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * 4 KiB random reads through a {@code BlockBackend} on the {@code file}
 * driver, from a 64 MiB file in {@code /tmp} written and synced at set-up,
 * so every read is served from the page cache: QEMU's {@code blk_aio_preadv}
 * on a {@code file} node with {@code aio=threads}. Each request goes to the
 * thread pool ({@code thread_pool_submit_aio}); a worker does the
 * {@code preadv} and hands the completion back to the IOThread as a BH, so
 * a request costs a cross-thread hand-off both ways.
 *
 * <p>One op = one completed read. The IOThread keeps {@code depth} reads in
 * flight: it issues {@code depth}, and every completion callback issues the
 * next, at a random 4 KiB-aligned offset, while the IOThread blocks in
 * {@code poll(true)} between completions, until {@link #OPS} have completed
 * (the last {@code depth - 1} complete at a lower depth). The score is the
 * inverse of the throughput. Each completion checks that the block it read
 * starts with its own index.
 *
 * <p>{@code pollMaxNs} 32768 makes the IOThread with
 * {@code MainLoop.newIOThread(name)}, the default with adaptive polling on;
 * 0 makes it sleep in {@code epoll_wait} whenever it waits. Each iteration
 * prints, per request, the IOThread's polls and the eventfd writes that woke
 * it (a completion that found it announced in {@code notify_me}), and its
 * adaptive poll window at the end of the iteration.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgs = "--enable-native-access=ALL-UNNAMED")
public class FileReadBench {
    static final int OPS = 10_000;
    private static final long SIZE = 64L << 20;
    private static final long BLOCKS = SIZE / BlockRig.REQ;

    @Param({"1", "32"})
    public int depth;

    @Param({"32768", "0"})
    public long pollMaxNs;

    private Path image;
    private BlockRig rig;
    private AioContext ctx;
    private BlockBackend blk;
    private Memory[] mem;
    private IoVec[] iov;
    private Slot[] slots;
    private Runnable loop;
    private long requests;     // JMH thread only
    private long requests0;
    private long polls0;
    private long wakes0;
    private long seed = 0x9E3779B97F4A7C15L; // IOThread only, like the fields below
    private int issued;
    private int completed;
    private int error;
    private String problem;

    @Setup
    public void setUp() throws IOException {
        image = writeImage();
        rig = BlockRig.fileDisk(image, pollMaxNs);
        ctx = rig.ctx;
        blk = rig.blk;
        mem = new Memory[depth];
        iov = new IoVec[depth];
        slots = new Slot[depth];
        for (int i = 0; i < depth; i++) {
            iov[i] = BlockRig.buffer(mem, i);
            slots[i] = new Slot(i);
        }
        loop = this::closedLoop;
    }

    @TearDown
    public void tearDown() throws IOException {
        try {
            rig.close();
        } finally {
            Files.deleteIfExists(image);
        }
    }

    @Setup(Level.Iteration)
    public void iterationStart() {
        requests0 = requests;
        polls0 = ctx.pollCount();
        wakes0 = ctx.eventfdWrites();
    }

    /** Racy reads of the IOThread's statistics between batches, for the iteration line. */
    @TearDown(Level.Iteration)
    public void iterationReport() {
        double n = Math.max(1, requests - requests0);
        System.out.printf("(per request: %.2f polls, %.2f eventfd wake-ups; poll_ns %d) ",
                (ctx.pollCount() - polls0) / n, (ctx.eventfdWrites() - wakes0) / n, ctx.pollNs());
    }

    @Benchmark
    @OperationsPerInvocation(OPS)
    public void read4k() {
        rig.run(loop);
        requests += OPS;
    }

    /** A 64 MiB file whose every 4 KiB block starts with its index (little-endian long), synced so no writeback runs later. */
    private static Path writeImage() throws IOException {
        Path p = Files.createTempFile(Path.of("/tmp"), "vblk-bench-", ".img");
        ByteBuffer chunk = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            for (long block = 0; block < BLOCKS;) {
                chunk.clear();
                while (chunk.hasRemaining()) {
                    chunk.putLong(chunk.position(), block++);
                    chunk.position(chunk.position() + BlockRig.REQ);
                }
                chunk.flip();
                while (chunk.hasRemaining()) {
                    ch.write(chunk);
                }
            }
            ch.force(true);
        }
        return p;
    }

    private void closedLoop() {
        issued = 0;
        completed = 0;
        for (int k = 0; k < depth; k++) {
            issue(k);
        }
        while (completed < OPS) {
            ctx.poll(true);
        }
        if (error != 0) {
            throw new IllegalStateException("a file read failed: " + error + (problem == null ? "" : ": " + problem));
        }
    }

    private void issue(int k) {
        long x = seed; // xorshift64
        x ^= x << 13;
        x ^= x >>> 7;
        x ^= x << 17;
        seed = x;
        long block = (x >>> 11) & (BLOCKS - 1);
        Slot s = slots[k];
        s.block = block;
        issued++;
        blk.preadv(block * BlockRig.REQ, BlockRig.REQ, iov[k], 0, s);
    }

    /** One request slot: its completion checks the data, counts, and issues the slot's next read. */
    private final class Slot implements BlockCompletion {
        final int index;
        long block;

        Slot(int index) {
            this.index = index;
        }

        @Override
        public void complete(int ret) {
            if (ret < 0) {
                error = ret;
            } else if (PlatformDependent.getLong(Memory.nativeValue(mem[index])) != block && error == 0) {
                error = -1;
                problem = "block " + block + " read wrong data"; // failure path only
            }
            completed++;
            if (issued < OPS) {
                issue(index);
            }
        }
    }
}
