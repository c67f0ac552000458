package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.Errno;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BadInputTest {

    /** Issues a backend request in the main loop and returns its result once completed. */
    private static int io(BlockTestSupport t, java.util.function.Consumer<BlockCompletion> issue) {
        return t.main("request", () -> {
            int[] ret = {Integer.MIN_VALUE};
            boolean[] early = {false};
            issue.accept(r -> ret[0] = r);
            early[0] = ret[0] != Integer.MIN_VALUE;
            assertTrue(!early[0], "a backend completion never runs before the call returns");
            io.vblk.aio.AioWait.pollWhile(t.loop.context(), () -> ret[0] == Integer.MIN_VALUE);
            return ret[0];
        });
    }

    @Test
    void badRequestsGetClearErrorsAndLeaveTheImageUnchanged(@TempDir Path dir) throws Exception {
        byte[] content = new byte[64 * 1024];
        new Random(3).nextBytes(content);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", content);
        try (BlockTestSupport t = new BlockTestSupport()) {
            BlockBackend b = t.main("open", () -> {
                BlockNode raw = t.layer.openImage("disk", img, "raw", false);
                BlockNode dbg = t.layer.openBlkDebug("dbg", raw);
                raw.unref();
                ((BlkDebugDriver) dbg.driver()).setAlignment(512);
                BlockBackend bb = t.layer.newBackend("blk0");
                bb.attach(dbg);
                dbg.unref();
                return bb;
            });
            BlockTestSupport.Buf buf = new BlockTestSupport.Buf(8192).fill(new byte[8192]);
            List<String> results = new ArrayList<>();
            results.add("past end " + io(t, c -> b.preadv(content.length - 512, 1024, buf.iov, 0, c)));
            results.add("write past end " + io(t, c -> b.pwritev(content.length, 512, buf.iov, 0, c)));
            results.add("negative " + io(t, c -> b.preadv(-512, 512, buf.iov, 0, c)));
            results.add("misaligned " + io(t, c -> b.pwritev(100, 512, buf.iov, 0, c)));
            results.add("misaligned length " + io(t, c -> b.pwritev(512, 100, buf.iov, 0, c)));
            results.add("short buffer " + io(t, c -> b.pwritev(0, 16384, buf.iov, 0, c)));
            assertEquals(List.of("past end " + -Errno.EIO, "write past end " + -Errno.EIO, "negative " + -Errno.EINVAL,
                    "misaligned " + -Errno.EINVAL, "misaligned length " + -Errno.EINVAL, "short buffer " + -Errno.EINVAL),
                    results);
            b.setReadOnly(true);
            assertEquals(-Errno.EROFS, io(t, c -> b.pwritev(0, 512, buf.iov, 0, c)));
            BlockBackend empty = t.main("empty backend", () -> t.layer.newBackend("blk-empty"));
            assertEquals(-Errno.ENOMEDIUM, io(t, c -> empty.preadv(0, 512, buf.iov, 0, c)));
            t.main("close", () -> t.layer.removeBackend(b));
        }
        assertArrayEquals(content, Files.readAllBytes(img), "no bad request touched the image");
    }

    @Test
    void ioOnAClosedNodeFailsWithNoMedium() {
        try (BlockTestSupport t = new BlockTestSupport()) {
            int ret = t.main("closed node", () -> {
                BlockNode n = t.layer.openNull("n0", NullDriver.Options.of(4096));
                n.unref();
                int[] r = {1};
                n.preadv(0, 512, new BlockTestSupport.Buf(512).iov, 0, x -> r[0] = x);
                return r[0];
            });
            assertEquals(-Errno.ENOMEDIUM, ret);
        }
    }

    @Test
    void openingMissingOrDirectoryImagesIsAClearError(@TempDir Path dir) throws Exception {
        try (BlockTestSupport t = new BlockTestSupport()) {
            BlockException missing = assertThrows(BlockException.class,
                    () -> t.main("open missing", () -> t.layer.openImage("d", dir.resolve("nope.img"), null, false)));
            assertTrue(missing.getMessage().contains("nope.img': no such file"), missing.getMessage());
            BlockException directory = assertThrows(BlockException.class,
                    () -> t.main("open dir", () -> t.layer.openImage("d", dir, null, false)));
            assertTrue(directory.getMessage().contains("is a directory"), directory.getMessage());
            Files.write(dir.resolve("x.img"), new byte[512]);
            BlockException badName = assertThrows(BlockException.class,
                    () -> t.main("bad name", () -> t.layer.openImage("9bad", dir.resolve("x.img"), null, false)));
            assertTrue(badName.getMessage().contains("invalid node name '9bad'"), badName.getMessage());
            assertEquals(0, t.layer.nodes().size(), "a failed open leaves no node behind");
        }
    }
}
