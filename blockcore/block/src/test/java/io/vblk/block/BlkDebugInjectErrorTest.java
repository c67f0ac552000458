package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.vblk.aio.Errno;

import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QEMU's blkdebug {@code inject-error} rules as {@link BlkDebugDriver} applies
 * them under a raw format node (raw raises {@code read_aio}/{@code write_aio}
 * on its file child, the blkdebug node, before each request): a rule is armed
 * only by its event, then matches by I/O type and sector; {@code once} spends it.
 */
class BlkDebugInjectErrorTest {

    /** raw "disk" over blkdebug "dbg" over the image's file node, all in the main loop. */
    private static BlockNode open(BlockTestSupport t, Path img, List<BlkDebugInjectError> rules) {
        return t.main("open", () -> {
            BlockNode file = t.layer.openFile("file", img, false);
            BlockNode dbg = t.layer.openBlkDebug("dbg", file);
            file.unref();
            ((BlkDebugDriver) dbg.driver()).addInjectErrors(rules);
            BlockNode raw = t.layer.openRaw("disk", dbg, 0, -1);
            dbg.unref();
            return raw;
        });
    }

    private static int io(BlockTestSupport t, BlockNode n, boolean write, long off, int len) {
        BlockTestSupport.Buf buf = new BlockTestSupport.Buf(len);
        CompletableFuture<Integer> f = new CompletableFuture<>();
        t.main("io", () -> {
            if (write) {
                n.pwritev(off, len, buf.iov, 0, f::complete);
            } else {
                n.preadv(off, len, buf.iov, 0, f::complete);
            }
        });
        return t.watchdog().await("request", f);
    }

    @Test
    void aWriteAioRuleIsArmedByTheFirstWriteAndThenMatchesItsSectorForEveryIoType(@TempDir Path dir)
            throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 16]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            BlockNode n = open(t, img, List.of(new BlkDebugInjectError("write_aio", null, Errno.EIO, 8, false,
                    false)));
            assertEquals(0, io(t, n, false, 0, 8192), "not armed before a write: the read covering sector 8 passes");
            assertEquals(0, io(t, n, true, 8192, 4096), "armed, but this write does not cover sector 8");
            assertEquals(-Errno.EIO, io(t, n, true, 0, 8192), "a write covering sector 8 fails");
            assertEquals(-Errno.EIO, io(t, n, false, 4096, 4096), "armed rules match reads too (default iotypes)");
            assertEquals(-Errno.EIO, io(t, n, true, 0, 8192), "without once the rule stays");
        }
    }

    @Test
    void aOnceRuleFailsOneRequestOnlyAndIotypeNarrowsIt(@TempDir Path dir) throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 16]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            BlockNode n = open(t, img, List.of(new BlkDebugInjectError("read_aio", "read", Errno.ENOSPC, -1, true,
                    true)));
            assertEquals(0, io(t, n, true, 0, 4096), "writes raise write_aio, which arms nothing here");
            assertEquals(-Errno.ENOSPC, io(t, n, false, 0, 4096), "the first read fails with the rule's errno");
            assertEquals(0, io(t, n, false, 0, 4096), "once: spent");
        }
    }

    @Test
    void anEventWithRulesDisarmsWhatAnEarlierEventArmedAndAnErrorlessRulePasses(@TempDir Path dir) throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 16]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            BlockNode n = open(t, img, List.of(
                    new BlkDebugInjectError("write_aio", null, Errno.EIO, 8, false, false),
                    new BlkDebugInjectError("read_aio", null, Errno.ENOSPC, 64, false, false),
                    new BlkDebugInjectError("read_aio", null, 0, 8, true, false)));
            assertEquals(-Errno.EIO, io(t, n, true, 0, 8192), "write_aio armed the sector-8 rule");
            assertEquals(0, io(t, n, false, 0, 8192), "read_aio re-armed: its sector-8 rule has no error, and passes");
            assertEquals(0, io(t, n, false, 0, 8192), "an errorless once rule is not spent by passing");
            assertEquals(-Errno.ENOSPC, io(t, n, false, 32768, 4096), "read_aio's sector-64 rule is armed");
            assertEquals(0, io(t, n, true, 32768, 4096), "a write raises write_aio: read_aio's sector-64 rule is "
                    + "disarmed, and write_aio's own rule covers sector 8 only");
            assertEquals(-Errno.EIO, io(t, n, true, 4096, 4096), "write_aio's rule again");
        }
    }

    @Test
    void eventsVblkNeverRaisesAreRefused() {
        assertThrows(BlockException.class, () -> new BlkDebugInjectError("l2_load", null, Errno.EIO, -1, false,
                false));
        assertThrows(BlockException.class, () -> new BlkDebugInjectError("read_aio", "bogus", Errno.EIO, -1, false,
                false));
    }
}
