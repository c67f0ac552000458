package io.vblk.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.AioWait;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockNode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.function.Consumer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The refcount allocator: first-fit contiguous allocation, reuse of freed
 * clusters, deferred frees that wait for the checkpoint and for older
 * requests, new self-describing refcount blocks and growth of the refcount
 * table, all consistent for {@code qemu-img check}.
 */
class RefcountsTest {
    private static final int PENDING = Integer.MIN_VALUE;

    /** Runs an asynchronous metadata operation holding the image's lock; waits in the main loop. */
    static int locked(BlockNode n, Consumer<BlockCompletion> op) {
        Qcow2Driver d = Qcow2Env.driver(n);
        int[] res = {PENDING};
        d.lock().acquire(() -> op.accept(r -> {
            d.lock().release();
            res[0] = r;
        }));
        AioWait.pollWhile(n.context(), () -> res[0] == PENDING);
        return res[0];
    }

    static long allocate(BlockNode n, int clusters) {
        long[] out = {0};
        int r = locked(n, done -> Qcow2Env.driver(n).refcounts().allocate(clusters, off -> {
            out[0] = off;
            done.complete(off < 0 ? (int) off : 0);
        }));
        assertEquals(0, r, "allocation");
        return out[0];
    }

    @Test
    void allocatesContiguouslyAndReusesFreedClusters(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("r.qcow2");
        Qcow2.create(img, 1 << 20, 4096, null, null); // clusters 0..3: header, refcount table, block, L1
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("r", img, null, false);
            env.main("allocator", () -> {
                Refcounts rc = Qcow2Env.driver(n).refcounts();
                assertEquals(4 * 4096, allocate(n, 3), "first fit after the metadata");
                assertEquals(7 * 4096, allocate(n, 1));
                assertEquals(1, rc.cachedRefcount(5));
                assertEquals(1, locked(n, cb -> rc.update(5 * 4096, 4096, -1, cb)), "1: the cluster became free");
                assertEquals(0, rc.cachedRefcount(5));
                assertEquals(5, rc.freeClusterIndex(), "the free index moved back");
                assertEquals(5 * 4096, allocate(n, 1), "the hole is reused");
                assertEquals(8 * 4096, allocate(n, 2), "a run that does not fit the hole goes after it");
                assertEquals(1, locked(n, cb -> rc.update(4 * 4096, 6 * 4096, -1, cb)), "1: all six became free");
                return null;
            });
            env.close(n);
        }
        QemuTools.check(img); // every allocation was given back: no leak
    }

    /** A test request that only occupies a sequence number in the in-flight list. */
    private static final class Dummy extends Qcow2Request {
        Dummy(Qcow2Driver d) {
            super(d);
        }

        @Override
        void step() {
        }

        @Override
        void recycle() {
        }

        @Override
        String traceName() {
            return "dummy";
        }
    }

    @Test
    void deferredFreesWaitForTheCheckpointAndForOlderRequests(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("f.qcow2");
        Qcow2.create(img, 1 << 20, 4096, null, null);
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("f", img, null, false);
            env.main("deferred frees", () -> {
                Qcow2Driver d = Qcow2Env.driver(n);
                Refcounts rc = d.refcounts();
                long c = allocate(n, 1);
                Dummy older = new Dummy(d);
                d.register(older); // a request in flight before the free
                d.frees().defer(c, 4096, d.freeTag(), false);
                assertEquals(1, rc.cachedRefcount(c / 4096), "deferred: still referenced");
                assertEquals(0, locked(n, cb -> d.checkpoint().run(false, cb)));
                assertEquals(1, rc.cachedRefcount(c / 4096), "an older request may still use the cluster");
                assertEquals(1, d.frees().size());
                d.unregister(older, 0);
                assertEquals(0, locked(n, cb -> d.checkpoint().run(false, cb)));
                assertEquals(0, rc.cachedRefcount(c / 4096), "applied once the older request completed");
                assertEquals(0, d.frees().size());
                return null;
            });
            env.close(n);
        }
        QemuTools.check(img);
    }

    @Test
    void refcountTableGrowsAndNewBlocksDescribeThemselves(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("g.qcow2");
        int size = 24 << 20;
        Qcow2.create(img, size, 512, null, null); // a 64-entry refcount table covers 8 MiB of 512-byte clusters
        byte[] model = new byte[size];
        new Random(3).nextBytes(model);
        long tableBefore;
        try (Qcow2Env env = new Qcow2Env(Qcow2Format.withCacheSizes(8, 4))) {
            BlockNode n = env.open("g", img, null, false);
            Qcow2Driver d = Qcow2Env.driver(n);
            tableBefore = d.header().refcountTableOffset;
            for (int off = 0; off < 18 << 20; off += 256 << 10) {
                env.write(n, off, java.util.Arrays.copyOfRange(model, off, off + (256 << 10)));
            }
            java.util.Arrays.fill(model, 18 << 20, size, (byte) 0);
            assertTrue(d.growth().growths() >= 1, "the refcount table grew");
            assertNotEquals(tableBefore, d.header().refcountTableOffset, "and moved");
            assertArrayEquals(model, env.read(n, 0, size));
            env.close(n);
        }
        QemuTools.check(img);
        Path raw = dir.resolve("ref.raw");
        Files.write(raw, model);
        QemuTools.compareWithRaw(img, raw);
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("again", img, null, false);
            env.write(n, 20 << 20, Qcow2Env.pattern(100_000, 1)); // keeps allocating with the grown table
            env.close(n);
        }
        QemuTools.check(img);
    }
}
