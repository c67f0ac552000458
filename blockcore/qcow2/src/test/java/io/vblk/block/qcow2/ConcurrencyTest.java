package io.vblk.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.IOThread;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockNode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Many requests in flight at once on a fresh qcow2 overlay in an IOThread:
 * random reads, writes (some FUA), write-zeroes, discards and flushes at
 * queue depth 32, checked against an in-memory model as they complete, with
 * caches small enough that loads, evictions, write-backs, allocations and
 * copy-on-write interleave; the node then moves back to the main loop, is
 * closed, and {@code qemu-img check} and {@code compare} judge the file.
 */
@Tag("concurrency")
class ConcurrencyTest {

    @BeforeAll
    static void tools() {
        QemuTools.require();
    }

    @ParameterizedTest(name = "cluster {0}, backing {1}, caches {2}")
    @CsvSource({"4096, raw, 4", "65536, qcow2, 4", "512, raw, 8", "65536, raw, 0", "2097152, qcow2, 2"})
    void queueDepth32AgainstAModel(int cs, String backingKind, int cache, @TempDir Path dir) throws Exception {
        int size = 24 << 20;
        byte[] initial = new byte[size];
        if (backingKind.equals("raw")) {
            new Random(cs).nextBytes(initial);
            Files.write(dir.resolve("base.raw"), initial);
        } else {
            Path base = dir.resolve("base.qcow2");
            QemuTools.create(base, size, 65536, null, null);
            QemuTools.io(base, "qcow2", "write -P 0x3c 0 " + (size / 3), "write -P 0x3d " + (size / 2) + " 4000000");
            java.util.Arrays.fill(initial, 0, size / 3, (byte) 0x3c);
            java.util.Arrays.fill(initial, size / 2, size / 2 + 4000000, (byte) 0x3d);
        }
        Path img = dir.resolve("top.qcow2");
        Qcow2.create(img, size, cs, "base." + backingKind, backingKind);
        ImageModel model = new ImageModel(initial, cs);
        Qcow2Format format = cache > 0 ? Qcow2Format.withCacheSizes(cache, cache) : null;
        try (Qcow2Env env = new Qcow2Env(format)) {
            IOThread io = env.loop.newIOThread("io0");
            BlockBackend blk = env.main("open", () -> {
                BlockNode n = env.layer.openImage("disk", img, null, false);
                BlockBackend b = env.layer.newBackend("blk0");
                b.attach(n);
                n.unref();
                b.setAioContext(io.context());
                return b;
            });
            ModelWorkload w = new ModelWorkload(blk, model, cs + cache, 32, 256 << 10);
            int count = cs == 512 || cs > 65536 ? 3000 : 6000;
            env.watchdog().await("workload", env.watchdog().await("start", io.context().submit("start", () -> w.run(count))));
            assertNull(w.firstProblem, w.firstProblem);
            assertEquals(count, w.completed);
            assertTrue(w.byOp[1] > 1000 && w.byOp[3] > 100, "mix of operations: " + java.util.Arrays.toString(w.byOp));
            String stats = env.watchdog().await("stats", io.context().submit("stats",
                    () -> Qcow2Env.driver(blk.root()).describe()));
            env.main("close", () -> {
                blk.setAioContext(env.loop.context());
                BlockNode n = blk.root();
                assertArrayEquals(model.bytes, readAll(n, size), "contents after the run, read in the main loop");
                env.layer.removeBackend(blk);
            });
            assertEquals(0, env.layer.nodes().size(), "graph closed: " + stats);
        }
        QemuTools.check(img);
        Path raw = dir.resolve("reference.raw");
        Files.write(raw, model.bytes);
        QemuTools.compareWithRaw(img, raw);
    }

    private static byte[] readAll(BlockNode n, int size) {
        com.sun.jna.Memory m = new com.sun.jna.Memory(size);
        io.vblk.block.IoVec v = new io.vblk.block.IoVec(1);
        v.add(com.sun.jna.Memory.nativeValue(m), size);
        assertEquals(0, n.preadSync(0, size, v));
        return m.getByteArray(0, size);
    }
}
