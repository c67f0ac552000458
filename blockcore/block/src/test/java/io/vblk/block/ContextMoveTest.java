package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.IOThread;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

@Tag("concurrency")
class ContextMoveTest {

    @Test
    void tenThousandRoundTripsWithEightRequestsInFlight(@TempDir Path dir) throws Exception {
        byte[] initial = new byte[1 << 20];
        Path img = BlockTestSupport.tempImage(dir, "disk.raw", initial);
        byte[] model = initial.clone();
        try (BlockTestSupport t = new BlockTestSupport()) {
            IOThread io0 = t.iothread("io0");
            BlockBackend blk = t.main("open", () -> {
                BlockNode n = t.layer.openImage("disk", img, "raw", false);
                BlockBackend b = t.layer.newBackend("blk0");
                b.attach(n);
                n.unref();
                return b;
            });
            Workload w = new Workload(blk, model, 7, 8, 8192);
            @SuppressWarnings("unchecked")
            CompletableFuture<Void>[] running = new CompletableFuture[1];
            int trips = t.main("10,000 round trips", () -> {
                running[0] = w.runUntilStopped(); // starts in main, where the node is now
                for (int i = 0; i < 10_000; i++) {
                    blk.setAioContext(io0.context());
                    blk.setAioContext(t.loop.context());
                }
                w.stop();
                blk.drain();
                return 10_000;
            });
            t.watchdog().await("workload end", running[0]);
            assertEquals(10_000, trips);
            assertNull(w.firstProblem, w.firstProblem);
            assertEquals(0, w.wrongThread.get());
            assertEquals(0, w.duplicates.get());
            assertEquals(w.issued.get(), w.completed.get(), "no completion lost");
            assertTrue(w.completed.get() > 10_000, "I/O kept flowing across the moves: " + w.completed.get());
            t.main("close", () -> t.layer.removeBackend(blk));
            assertTrue(t.loop.failures().isEmpty(), t.loop.failures().toString());
        }
        assertArrayEquals(model, Files.readAllBytes(img));
    }

    @Test
    void aPinnedBackendRefusesTheMoveWithAClearError() {
        try (BlockTestSupport t = new BlockTestSupport()) {
            IOThread io0 = t.iothread("io0");
            BlockException e = assertThrows(BlockException.class, () -> t.main("move pinned", () -> {
                BlockNode n = t.layer.openNull("n0", NullDriver.Options.of(1 << 20));
                BlockBackend b = t.layer.newBackend("blk0");
                b.attach(n);
                b.pin("attached to virtio-blk 00:04.0 without a dataplane");
                b.setAioContext(io0.context());
            }));
            assertTrue(e.getMessage().contains("cannot move node 'n0' to AioContext 'io0': backend 'blk0' is pinned: "
                    + "attached to virtio-blk 00:04.0 without a dataplane"), e.getMessage());
            assertEquals(t.loop.context(), t.layer.node("n0").context(), "nothing moved");
        }
    }

    @Test
    void graphOperationsOutsideTheMainLoopAreRefused() {
        try (BlockTestSupport t = new BlockTestSupport()) {
            IOThread io0 = t.iothread("io0");
            BlockNode n = t.main("open", () -> t.layer.openNull("n0", NullDriver.Options.of(4096)));
            IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> t.layer.setAioContext(n, io0.context()));
            assertTrue(e.getMessage().contains("graph operations run in the main loop"), e.getMessage());
            IllegalStateException e2 = assertThrows(IllegalStateException.class,
                    () -> n.preadv(0, 0, new IoVec(), 0, ret -> { }));
            assertTrue(e2.getMessage().contains("run it in AioContext 'main-loop' or hold that context's lock"),
                    e2.getMessage());
        }
    }
}
