package io.vblk.bench.virtio;

import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
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
 * The virtio-blk request path in one thread: a 4 KiB read in a 3-descriptor
 * chain (header, data, status) on a {@code null} disk, popped, parsed,
 * issued to the {@code BlockBackend}, completed and pushed to the used ring,
 * all in the device's home IOThread (see {@link VirtioBlkRig}). QEMU's
 * {@code virtio_blk_handle_vq} → {@code virtqueue_pop} →
 * {@code virtio_blk_handle_request} → {@code blk_aio_preadv} on
 * {@code null-co}, the completion BH, {@code virtio_blk_req_complete} →
 * {@code virtqueue_push} and the batched {@code virtio_notify} check.
 *
 * <ul>
 * <li>{@code read4k}: one op = the driver adds one request and publishes it;
 *     {@code VirtioBlk.queueNotify(0)} (what a kick runs) pops and parses it
 *     and issues the read; {@code ctx.poll(false)} until the driver sees it
 *     used (the backend defers the synchronous completion to a BH; the
 *     batched notification BH runs in the same or the next poll); the driver
 *     reaps the used entry and checks id, length and status.</li>
 * <li>{@code read4kBatch32}: 32 requests added and published at once, one
 *     {@code queueNotify}, polls until all 32 are used; reported per request.</li>
 * </ul>
 * {@code readZeroes}: whether the null driver zero-fills the 4 KiB buffer
 * (QEMU's {@code read-zeroes}). Run with {@code -prof gc}: the goal is no
 * allocation per request.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgs = "--enable-native-access=ALL-UNNAMED")
public class VirtioBlkRequestBench {
    static final int OPS = 100_000;
    static final int BATCH = 32;

    @Param({"true", "false"})
    public boolean readZeroes;

    private VirtioBlkRig rig;
    private Runnable single;
    private Runnable batch;
    private long sector;

    @Setup
    public void setUp() {
        rig = new VirtioBlkRig(readZeroes);
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
        VirtioBlkRig g = rig;
        long sec = sector;
        for (int i = 0; i < OPS; i++) {
            g.add(i % VirtioBlkRig.SLOTS, sec);
            sec = (sec + 8) & VirtioBlkRig.SECTOR_MASK;
            g.publish();
            g.dev.queueNotify(0);
            g.completeAll();
        }
        sector = sec;
    }

    private void batch32Batch() {
        VirtioBlkRig g = rig;
        long sec = sector;
        for (int i = 0; i < OPS; i += BATCH) {
            for (int k = 0; k < BATCH; k++) {
                g.add(k, sec);
                sec = (sec + 8) & VirtioBlkRig.SECTOR_MASK;
            }
            g.publish();
            g.dev.queueNotify(0);
            g.completeAll();
        }
        sector = sec;
    }
}
