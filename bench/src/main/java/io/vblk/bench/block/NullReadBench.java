package io.vblk.bench.block;

import io.vblk.aio.AioContext;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockCompletion;
import io.vblk.block.IoVec;

import com.sun.jna.Memory;

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
 * 4 KiB reads through a {@code BlockBackend} on the {@code null} driver
 * (zero-filling, no latency), in the node's home IOThread: QEMU's
 * {@code blk_aio_preadv} on a {@code null-co} node with {@code read-zeroes=on},
 * whose synchronous completion {@code blk_aio_complete_bh} defers to a BH,
 * then {@code aio_poll(ctx, false)} running that BH. The request path
 * (backend checks, node accounting, the driver's memset, the deferral) is
 * the block layer's whole per-request overhead, with no I/O behind it.
 *
 * <ul>
 * <li>{@code read4k}: one op = {@code blk.preadv(off, 4096, iov, 0, done)}
 *     then {@code ctx.poll(false)} until {@code done} has run (one poll).</li>
 * <li>{@code read4kBatch32}: 32 reads issued back to back into 32 buffers,
 *     then {@code poll(false)} until all 32 completed, as one virtqueue pop
 *     batch does; reported per request (the op count is per read).</li>
 * </ul>
 * The I/O vectors, native buffers and completion object are made once.
 * Run with {@code -prof gc}: the goal is no allocation per request.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgs = "--enable-native-access=ALL-UNNAMED")
public class NullReadBench {
    static final int OPS = 100_000;
    static final int BATCH = 32;
    private static final long SIZE = 64L << 20;
    private static final long MASK = SIZE / BlockRig.REQ - 1;

    private BlockRig rig;
    private AioContext ctx;
    private BlockBackend blk;
    private final Memory[] mem = new Memory[BATCH];
    private final IoVec[] iov = new IoVec[BATCH];
    private final Done done = new Done();
    private Runnable single;
    private Runnable batch;

    /** The reused completion: counts completions and keeps the first error. */
    static final class Done implements BlockCompletion {
        long count;
        int error;

        @Override
        public void complete(int ret) {
            if (ret < 0 && error == 0) {
                error = ret;
            }
            count++;
        }
    }

    @Setup
    public void setUp() {
        rig = BlockRig.nullDisk(SIZE, 0);
        ctx = rig.ctx;
        blk = rig.blk;
        for (int i = 0; i < BATCH; i++) {
            iov[i] = BlockRig.buffer(mem, i);
        }
        single = this::singleBatch;
        batch = this::batch32Batch;
    }

    @TearDown
    public void tearDown() {
        rig.close();
    }

    @Benchmark
    @OperationsPerInvocation(OPS)
    public void read4k() {
        rig.run(single);
    }

    @Benchmark
    @OperationsPerInvocation(OPS)
    public void read4kBatch32() {
        rig.run(batch);
    }

    private void singleBatch() {
        AioContext c = ctx;
        BlockBackend b = blk;
        IoVec v = iov[0];
        Done d = done;
        for (int i = 0; i < OPS; i++) {
            long target = d.count + 1;
            b.preadv((i & MASK) * BlockRig.REQ, BlockRig.REQ, v, 0, d);
            pollUntil(c, d, target);
        }
    }

    private void batch32Batch() {
        AioContext c = ctx;
        BlockBackend b = blk;
        IoVec[] v = iov;
        Done d = done;
        for (int i = 0; i < OPS; i += BATCH) {
            long target = d.count + BATCH;
            for (int k = 0; k < BATCH; k++) {
                b.preadv(((i + k) & MASK) * BlockRig.REQ, BlockRig.REQ, v[k], 0, d);
            }
            pollUntil(c, d, target);
        }
    }

    /** Non-blocking polls until {@code target} completions; a request that never completes fails the run. */
    private static void pollUntil(AioContext c, Done d, long target) {
        for (int polls = 0; d.count < target; polls++) {
            if (polls == 1000) {
                throw new IllegalStateException("a null read did not complete within 1000 polls");
            }
            c.poll(false);
        }
        if (d.error != 0) {
            throw new IllegalStateException("a null read failed: " + d.error);
        }
    }
}
