package io.vblk.txn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.HangDetectedException;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.block.qcow2.Qcow2;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** External snapshots in a transaction: success, abort, and seed 002's lock scope. */
@Tag("concurrency")
class TransactionSmokeTest {
    @TempDir
    Path dir;

    /** The legacy half (seed 002's hang) is the seed-002 scenario's, in the tests module. */
    @Test
    void twoSnapshotsOfDisksInOneIOThread() throws Exception {
        boolean legacy = false;
        LegacySwitches sw = new LegacySwitches();
        Qcow2.create(dir.resolve("a.qcow2"), 1 << 20);
        Qcow2.create(dir.resolve("b.qcow2"), 1 << 20);
        try (MainLoop loop = new MainLoop(sw); BlockLayer layer = new BlockLayer(loop)) {
            IOThread io0 = loop.newIOThread("io0");
            BlockBackend[] devs = loop.watchdog(Duration.ofSeconds(30)).call("open", () -> {
                BlockBackend[] d = new BlockBackend[2];
                int i = 0;
                for (String n : new String[] {"a", "b"}) {
                    BlockNode node = layer.openImage(n, dir.resolve(n + ".qcow2"), "qcow2", false);
                    d[i] = layer.newBackend("blk-" + n);
                    d[i].attach(node);
                    node.unref();
                    d[i].setAioContext(io0.context());
                    i++;
                }
                return d;
            });
            sw.set(LegacyBehavior.SNAPSHOT_LOCK_ACROSS_TRANSACTION, legacy);
            List<ExternalSnapshot> actions = List.of(
                    new ExternalSnapshot(layer, devs[0].root(), dir.resolve("a-snap.qcow2"), "a-snap"),
                    new ExternalSnapshot(layer, devs[1].root(), dir.resolve("b-snap.qcow2"), "b-snap"));
            if (legacy) {
                HangDetectedException h = assertThrows(HangDetectedException.class, () -> loop.watchdog(Duration.ofSeconds(2))
                        .run("transaction", () -> Transaction.run(layer, actions)));
                assertTrue(h.dump().contains("lock: held by 'main-loop' depth 1 (threads waiting)"), h.dump());
                return;
            }
            loop.watchdog(Duration.ofSeconds(30)).run("transaction", () -> Transaction.run(layer, actions));
            assertEquals("a-snap", devs[0].root().name());
            assertEquals("b-snap", devs[1].root().name());
            assertSame(layer.node("a"), devs[0].root().child(ChildRole.BACKING));
            assertTrue(layer.node("a").isReadOnly());
            assertSame(io0.context(), devs[0].root().context());
        }
    }

    @Test
    void aFailingActionLeavesNothingBehind() throws Exception {
        Qcow2.create(dir.resolve("a.qcow2"), 1 << 20);
        try (MainLoop loop = new MainLoop(); BlockLayer layer = new BlockLayer(loop)) {
            BlockBackend dev = loop.watchdog(Duration.ofSeconds(30)).call("open", () -> {
                BlockNode node = layer.openImage("a", dir.resolve("a.qcow2"), "qcow2", false);
                BlockBackend d = layer.newBackend("blk-a");
                d.attach(node);
                node.unref();
                return d;
            });
            String before = layer.describe();
            List<ExternalSnapshot> actions = List.of(
                    new ExternalSnapshot(layer, dev.root(), dir.resolve("s1.qcow2"), "s1"),
                    new ExternalSnapshot(layer, dev.root(), dir.resolve("s2.qcow2"), "a")); // name in use
            BlockException e = assertThrows(BlockException.class, () -> loop.watchdog(Duration.ofSeconds(30))
                    .run("transaction", () -> Transaction.run(layer, actions)));
            assertTrue(e.getMessage().contains("already in use"), e.getMessage());
            loop.watchdog(Duration.ofSeconds(30)).run("settle", () -> io.vblk.aio.AioWait.pollWhile(loop.context(),
                    () -> dev.root().inFlight() > 0));
            assertEquals(before, layer.describe());
            assertEquals("a", dev.root().name());
            assertFalse(dev.root().isReadOnly());
            assertFalse(Files.exists(dir.resolve("s1.qcow2")));
            assertNull(layer.node("s1"));
        }
    }
}
