package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.Errno;
import io.vblk.aio.HangDetectedException;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;

import java.nio.file.Path;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Seed 003: two disks whose nodes share one IOThread, and inactivate-all.
 * Each flush completes through the IOThread's thread-pool BH, which the
 * IOThread can only run holding its context lock. The wait releases the
 * lock once: acquired once per context (fixed) that frees it; acquired once
 * per node (legacy) the IOThread never gets it.
 */
@Tag("concurrency")
class Seed003InactivateAllTest {

    @ParameterizedTest(name = "legacy={0}")
    @ValueSource(booleans = {false, true})
    void inactivateAllAcquiresEachContextOnce(boolean legacy, @TempDir Path dir) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.RECURSIVE_LOCK_IN_INACTIVATE_ALL, legacy);
        Path a = BlockTestSupport.tempImage(dir, "a.raw", new byte[1 << 16]);
        Path b = BlockTestSupport.tempImage(dir, "b.raw", new byte[1 << 16]);
        try (BlockTestSupport t = new BlockTestSupport(sw)) {
            IOThread io0 = t.iothread("io0");
            t.main("open two disks in io0", () -> {
                for (Path p : new Path[] {a, b}) {
                    String name = p.getFileName().toString().substring(0, 1);
                    BlockNode n = t.layer.openImage("disk-" + name, p, "raw", false);
                    BlockBackend blk = t.layer.newBackend("blk-" + name);
                    blk.attach(n);
                    n.unref();
                    blk.setAioContext(io0.context());
                }
            });
            if (legacy) {
                HangDetectedException hang = assertThrows(HangDetectedException.class,
                        () -> t.loop.watchdog(BlockTestSupport.HANG).call("inactivate all", t.layer::inactivateAll));
                assertTrue(hang.dump().contains("lock: held by 'main-loop' depth 3 (threads waiting)"), hang.dump());
            } else {
                assertEquals(0, (int) t.main("inactivate all", t.layer::inactivateAll));
                for (BlockNode n : t.layer.nodes()) {
                    assertTrue(n.isInactive(), n.name() + " is inactive");
                }
                BlockTestSupport.Buf buf = new BlockTestSupport.Buf(512);
                int ret = t.watchdog().await("write to an inactive node", io0.context().submit("write",
                        () -> t.layer.node("disk-a").pwriteSync(0, 512, buf.iov, 0)));
                assertEquals(-Errno.EPERM, ret, "writes to an inactive node fail");
                assertEquals(0, (int) t.main("activate all", t.layer::activateAll));
                ret = t.watchdog().await("write after activation", io0.context().submit("write",
                        () -> t.layer.node("disk-a").pwriteSync(0, 512, buf.iov, 0)));
                assertEquals(0, ret);
            }
        }
    }
}
