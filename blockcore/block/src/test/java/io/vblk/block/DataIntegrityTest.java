package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.vblk.aio.IOThread;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

@Tag("concurrency")
class DataIntegrityTest {

    @Test
    void twentyThousandRandomRequestsFromTwoContextsSurviveCloseAndReopen(@TempDir Path dir) throws Exception {
        byte[] initial = new byte[4 << 20];
        new Random(1).nextBytes(initial);
        Path img = BlockTestSupport.tempImage(dir, "disk.raw", initial);
        byte[] model = initial.clone();
        try (BlockTestSupport t = new BlockTestSupport()) {
            IOThread io0 = t.iothread("io0");
            IOThread io1 = t.iothread("io1");
            BlockBackend blk = t.main("open", () -> {
                BlockNode file = t.layer.openFile("disk-file", img, false);
                BlockNode raw = t.layer.openRaw("disk", file, 0, -1);
                file.unref();
                BlockBackend b = t.layer.newBackend("blk0");
                b.attach(raw);
                raw.unref();
                b.setAioContext(io0.context());
                return b;
            });
            Workload w = new Workload(blk, model, 42, 16, 64 * 1024);
            t.watchdog().await("10,000 requests in io0", t.watchdog().await("start", io0.context().submit("start", () -> w.run(10_000))));
            t.main("move to io1", () -> blk.setAioContext(io1.context()));
            t.watchdog().await("10,000 requests in io1", t.watchdog().await("start", io1.context().submit("start", () -> w.run(10_000))));
            assertNull(w.firstProblem, w.firstProblem);
            assertEquals(20_000, w.issued.get());
            assertEquals(20_000, w.completed.get());
            t.main("close", () -> {
                blk.setAioContext(t.loop.context());
                t.layer.removeBackend(blk);
            });
            assertEquals(0, t.layer.nodes().size(), "closing the backend closed the graph");
        }
        assertArrayEquals(model, Files.readAllBytes(img), "the file after close matches the model");
        try (BlockTestSupport t = new BlockTestSupport()) {
            byte[] reread = t.main("reopen and read", () -> {
                BlockNode n = t.layer.openImage("disk", img, "raw", true);
                BlockTestSupport.Buf b = new BlockTestSupport.Buf(model.length);
                assertEquals(0, n.preadSync(0, model.length, b.iov));
                return b.bytes();
            });
            assertArrayEquals(model, reread, "reading the reopened image through vblk matches the model");
        }
    }
}
