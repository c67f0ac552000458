package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The driver operations jobs and transactions use instead of casting to a
 * format: a node's filename ({@code bs->filename}) comes from its protocol
 * child, and a driver or format without {@code .bdrv_change_backing_file}
 * or {@code .bdrv_co_create_opts} refuses by name.
 */
class DriverDefaultsTest {

    @Test
    void imagePathIsTheFileChildsAndNoneWithoutAFile(@TempDir Path dir) throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[4096]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("check", () -> {
                BlockNode raw = t.layer.openImage("disk", img, "raw", false);
                BlockNode file = raw.child(ChildRole.FILE);
                assertEquals(img, file.driver().imagePath());
                assertEquals(img, raw.driver().imagePath(), "a format node's filename is its file's");
                BlockNode dbg = t.layer.openBlkDebug("dbg", raw);
                assertNull(dbg.driver().imagePath(), "a filter over an image is no image file");
                BlockNode nul = t.layer.openNull("null0", NullDriver.Options.of(4096));
                assertNull(nul.driver().imagePath());
                dbg.unref();
                nul.unref();
                raw.unref();
            });
        }
    }

    @Test
    void driversWithoutTheCallbacksRefuseByName(@TempDir Path dir) throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[4096]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("check", () -> {
                BlockNode raw = t.layer.openImage("disk", img, "raw", false);
                BlockException e = assertThrows(BlockException.class, () -> raw.driver().changeBackingFile("b", "raw"));
                assertTrue(e.getMessage().contains("not supported by driver raw"), e.getMessage());
                BlockException c = assertThrows(BlockException.class,
                        () -> t.layer.format("raw").create(dir.resolve("new.raw"), 4096, null, null));
                assertTrue(c.getMessage().contains("not supported by format raw"), c.getMessage());
                raw.unref();
            });
        }
    }
}
