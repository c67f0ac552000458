package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.RandomAccessFile;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The file driver's block status finds a sparse file's holes with SEEK_DATA/SEEK_HOLE (QEMU's find_allocation). */
class FileBlockStatusTest {
    private static final int MIB = 1 << 20;

    @Test
    void sparseRawFileReportsHolesAsZeroAndDataAsData(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("sparse.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8L * MIB); // all hole
            f.seek(2L * MIB);
            f.write(new byte[MIB]); // [2 MiB, 3 MiB) allocated (zeroes written are still data)
        }
        try (BlockTestSupport env = new BlockTestSupport()) {
            BlockNode n = env.main("open", () -> env.layer.openImage("disk", img, "raw", true));
            BlockStatus head = env.main("status", () -> n.blockStatus(0, 8L * MIB));
            assertEquals(new BlockStatus(true, true, false, 2L * MIB), head, "the leading hole");
            BlockStatus data = env.main("status", () -> n.blockStatus(2L * MIB, 6L * MIB));
            assertEquals(BlockStatus.data(MIB), data, "the written megabyte");
            BlockStatus tail = env.main("status", () -> n.blockStatus(3L * MIB, 5L * MIB));
            assertEquals(BlockStatus.zero(5L * MIB), tail, "the trailing hole up to the end of the file");
            BlockStatus inside = env.main("status", () -> n.blockStatus(2L * MIB + 4096, 4096));
            assertEquals(BlockStatus.data(4096), inside, "a range inside data is clamped to its length");
        }
    }
}
