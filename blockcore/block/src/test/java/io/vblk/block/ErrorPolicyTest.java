package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.Errno;
import io.vblk.aio.IOThread;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

@Tag("concurrency")
class ErrorPolicyTest {

    /** backend -> blkdebug -> raw -> file, in io0. */
    private static BlockBackend open(BlockTestSupport t, Path img, IOThread io0) {
        return t.main("open", () -> {
            BlockNode raw = t.layer.openImage("disk", img, "raw", false);
            BlockNode dbg = t.layer.openBlkDebug("dbg", raw);
            raw.unref();
            BlockBackend b = t.layer.newBackend("blk0");
            b.attach(dbg);
            dbg.unref();
            b.setAioContext(io0.context());
            return b;
        });
    }

    private static BlkDebugDriver debug(BlockBackend b) {
        return (BlkDebugDriver) b.root().driver();
    }

    private static CompletableFuture<Integer> write(BlockTestSupport t, BlockBackend b, long off, BlockTestSupport.Buf buf) {
        CompletableFuture<Integer> f = new CompletableFuture<>();
        b.context().bhScheduleOneshot("write", () -> b.pwritev(off, buf.size, buf.iov, 0, f::complete));
        return f;
    }

    @Test
    void reportHandsTheErrorToTheDevice(@TempDir Path dir) throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 16]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            IOThread io0 = t.iothread("io0");
            BlockBackend b = open(t, img, io0);
            debug(b).injectError(BlkDebugDriver.Op.READ, 0, 4096, Errno.EIO, 0, true);
            BlockTestSupport.Buf buf = new BlockTestSupport.Buf(4096);
            CompletableFuture<Integer> f = new CompletableFuture<>();
            io0.context().bhScheduleOneshot(() -> b.preadv(0, 4096, buf.iov, 0, f::complete));
            assertEquals(-Errno.EIO, t.watchdog().await("read", f));
            assertEquals(IoStatus.OK, b.ioStatus(), "report does not stop");
        }
    }

    @Test
    void ignoreReportsSuccess(@TempDir Path dir) throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 16]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            IOThread io0 = t.iothread("io0");
            BlockBackend b = open(t, img, io0);
            b.setErrorPolicy(ErrorPolicy.REPORT, ErrorPolicy.IGNORE);
            debug(b).injectError(BlkDebugDriver.Op.WRITE, 0, -1, Errno.ENOSPC, 0, false);
            BlockTestSupport.Buf buf = new BlockTestSupport.Buf(512).fill(new byte[512]);
            assertEquals(0, t.watchdog().await("write", write(t, b, 0, buf)));
        }
    }

    @Test
    void stopKeepsTheRequestStopsTheMachineAndResubmitsOnResume(@TempDir Path dir) throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 16]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            IOThread io0 = t.iothread("io0");
            BlockBackend b = open(t, img, io0);
            b.setErrorPolicy(ErrorPolicy.STOP, ErrorPolicy.STOP);
            CountDownLatch stopped = new CountDownLatch(1);
            boolean[] stopRanInMain = new boolean[1];
            b.setStopRequest(() -> {
                stopRanInMain[0] = t.loop.context().inHomeThread();
                stopped.countDown();
            });
            BlkDebugDriver.Rule rule = debug(b).injectError(BlkDebugDriver.Op.WRITE, 8192, 12288, Errno.EIO, 0, true);
            byte[] data = new byte[4096];
            Arrays.fill(data, (byte) 0x5a);
            BlockTestSupport.Buf buf = new BlockTestSupport.Buf(4096).fill(data);
            CompletableFuture<Integer> f = write(t, b, 8192, buf);
            t.watchdog().await("machine stop request", stopped);
            assertTrue(stopRanInMain[0], "the stop request runs in the main loop");
            assertEquals(1, rule.fired());
            assertEquals(IoStatus.FAILED, b.ioStatus());
            assertEquals(1, b.stoppedRequests(), "the failed request is kept");
            assertFalse(f.isDone(), "the device has not seen a completion");
            t.main("cont", b::resume);
            assertEquals(0, t.watchdog().await("resubmitted write", f));
            assertEquals(IoStatus.OK, b.ioStatus());
            assertEquals(0, b.stoppedRequests());
            t.main("flush", () -> {
                b.setAioContext(t.loop.context());
                assertEquals(0, b.root().flushSync());
            });
            byte[] file = Files.readAllBytes(img);
            assertArrayEquals(data, Arrays.copyOfRange(file, 8192, 12288), "the resubmitted data reached the disk");
        }
    }
}
