package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link BlockNode#truncate} (QEMU's {@code bdrv_co_truncate} under
 * {@code block_resize}): each driver's answer, the file on disk, the
 * backend's length, and the refusals in QEMU's words.
 */
class BlockTruncateTest {

    @Test
    void rawOverFileGrowsAndShrinksTheHostFileAndTheBackendFollows(@TempDir Path dir) throws Exception {
        byte[] data = new byte[1 << 20];
        Arrays.fill(data, (byte) 0x5a);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", data);
        try (BlockTestSupport t = new BlockTestSupport()) {
            long[] lengths = t.main("resize", () -> {
                BlockNode file = t.layer.openFile("f", img, false);
                BlockNode raw = t.layer.openRaw("disk", file, 0, -1);
                file.unref();
                BlockBackend b = t.layer.newBackend("blk0");
                b.attach(raw);
                raw.unref();
                raw.truncate(4L << 20);
                long grown = b.length();
                long onDisk = Files.size(img);
                BlockTestSupport.Buf buf = new BlockTestSupport.Buf(4096);
                assertEquals(0, raw.preadSync((4L << 20) - 4096, 4096, buf.iov), "the new end is readable");
                assertArrayEquals(new byte[4096], buf.bytes(), "the grown part reads as zeroes");
                raw.truncate(512L << 10);
                long shrunk = b.length();
                t.layer.removeBackend(b);
                return new long[] {grown, onDisk, shrunk};
            });
            assertEquals(4L << 20, lengths[0], "the backend's length after growing");
            assertEquals(4L << 20, lengths[1], "the host file after growing");
            assertEquals(512L << 10, lengths[2], "the backend's length after shrinking");
        }
        assertEquals(512L << 10, Files.size(img), "the host file after shrinking");
        assertArrayEquals(Arrays.copyOf(data, 512 << 10), Files.readAllBytes(img), "the kept data is intact");
    }

    @Test
    void aRawWindowKeepsItsOffsetAndAFixedSizeWindowIsRefused(@TempDir Path dir) throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 20]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            String refused = t.main("resize", () -> {
                BlockNode file = t.layer.openFile("f", img, false);
                BlockNode shifted = t.layer.openRaw("shifted", file, 65536, -1);
                shifted.truncate(2L << 20);
                assertEquals(2L << 20, shifted.length());
                BlockNode fixed = t.layer.openRaw("fixed", file, 0, 4096);
                BlockException e = assertThrows(BlockException.class, () -> fixed.truncate(8192));
                assertEquals(4096, fixed.length(), "a refused resize changes nothing");
                file.unref();
                shifted.unref();
                fixed.unref();
                return e.getMessage();
            });
            assertEquals("Cannot resize fixed-size raw disks", refused);
        }
        assertEquals(65536 + (2L << 20), Files.size(img), "the file is the window's offset plus the new size");
    }

    @Test
    void unsupportedDriversAndBadRequestsAreRefusedInQemusWords(@TempDir Path dir) throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[8192]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("resize", () -> {
                BlockNode n = t.layer.openNull("null0", NullDriver.Options.of(1 << 20));
                // QEMU's null-co has no .bdrv_co_truncate either: qsd refuses block_resize of it the same way
                String nm = assertThrows(BlockException.class, () -> n.truncate(1L << 40)).getMessage();
                assertTrue(nm.startsWith("Image format driver does not support resize") && nm.contains("null"), nm);
                assertEquals(1 << 20, n.length());
                assertEquals("Image size cannot be negative",
                        assertThrows(BlockException.class, () -> n.truncate(-1)).getMessage());
                n.unref();
                BlockNode ro = t.layer.openFile("ro", img, true);
                assertEquals("Image is read-only", assertThrows(BlockException.class, () -> ro.truncate(0)).getMessage());
                ro.unref();
                BlockNode dbg = t.layer.openBlkDebug("dbg", t.layer.openNull("n2", NullDriver.Options.of(4096)));
                String m = assertThrows(BlockException.class, () -> dbg.truncate(0)).getMessage();
                assertTrue(m.startsWith("Image format driver does not support resize") && m.contains("blkdebug"), m);
                dbg.unref();
            });
            BlockNode n = t.main("open", () -> t.layer.openNull("null1", NullDriver.Options.of(4096)));
            assertThrows(IllegalStateException.class, () -> n.truncate(8192), "outside the node's context");
            assertEquals(4096, n.length());
            t.main("close", n::unref);
        }
        assertEquals(8192, Files.size(img), "a refused resize leaves the read-only file alone");
    }
}
