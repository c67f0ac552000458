package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.Stream;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The {@code file} driver on a block device (a loop device over a temporary
 * file, {@link LoopDevice}), once per aio engine: the paths a regular file
 * never takes. With 4096-byte logical sectors, O_DIRECT must learn its
 * alignment from {@code BLKSSZGET} (a 512-aligned request sent as it is would
 * fail with EINVAL) and take the rest through the bounce buffer;
 * {@code discard=unmap} must reach the device as {@code BLKDISCARD} (the
 * device's discard counter moves by exactly the range) trimmed to whole
 * sectors, which the loop driver turns into a punched hole in its backing
 * file: the file's allocated blocks shrink and the range reads zeroes.
 * Skipped (saying why) without loop devices, unless
 * {@code -Dvblk.test.loopDevices.required=true}.
 */
@Tag("concurrency")
class FileBlockDeviceTest {
    private static final int SECTOR = 4096;

    @TempDir
    Path dir;

    static Stream<FileOptions.Aio> engines() {
        return FileDriverSuiteTest.engines();
    }

    private static FileOptions opts(FileOptions.Aio aio) {
        return FileDriverSuiteTest.opts(aio);
    }

    private static byte[] pattern(int n, long seed) {
        return FileDriverSuiteTest.pattern(n, seed);
    }

    private static long allocatedBlocks(Path p) {
        return FileDriverSuiteTest.allocatedBlocks(p);
    }

    /** A one-segment vector over {@code data} placed {@code misalign} bytes past a page boundary. */
    private static IoVec buffer(byte[] data, int misalign, Memory[] keep) {
        Memory m = new Memory(data.length + 8192L);
        keep[0] = m;
        long a = ((Memory.nativeValue(m) + 4095) & -4096L) + misalign;
        m.write(a - Memory.nativeValue(m), data, 0, data.length);
        IoVec v = new IoVec(1);
        v.add(a, data.length);
        return v;
    }

    @ParameterizedTest
    @MethodSource("engines")
    void oDirectOnA4kSectorDeviceAlignsTo4kAndBouncesWhatIsNot(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio).withDirect(true);
        byte[] model = pattern(1 << 20, 11);
        Path backing = BlockTestSupport.tempImage(dir, "backing.raw", model);
        try (LoopDevice loop = LoopDevice.attach(backing, SECTOR);
                BlockTestSupport t = new BlockTestSupport()) {
            t.main("direct io on " + loop.device, () -> {
                BlockNode n = t.layer.openFile("dev", loop.device, o);
                FileDriver d = (FileDriver) n.driver();
                assertTrue(d.isBlockDevice(), "statx sees a block device");
                assertEquals(SECTOR, d.logicalBlockSize(), "BLKSSZGET");
                assertEquals(SECTOR, d.directAlignment(), "O_DIRECT offsets aligned to the logical block size");
                assertEquals(1 << 20, n.length());
                Memory[] keep = new Memory[1];
                // 4 KiB-aligned offset, length and memory: straight from the caller's buffer
                byte[] d1 = pattern(8192, 12);
                assertEquals(0, n.pwriteSync(8192, 8192, buffer(d1, 0, keep), 0));
                System.arraycopy(d1, 0, model, 8192, 8192);
                assertEquals(0, d.bouncedRequests(), "aligned to 4 KiB: no bounce");
                // 512-aligned: fine on a 512-byte device, EINVAL here unless bounced
                byte[] d2 = pattern(1024, 13);
                assertEquals(0, n.pwriteSync(20480 + 512, 1024, buffer(d2, 512, keep), 0));
                System.arraycopy(d2, 0, model, 20480 + 512, 1024);
                assertEquals(1, d.bouncedRequests(), "512-aligned on a 4 KiB device: read-modify-write in the bounce");
                // byte-granular, straddling a sector boundary
                byte[] d3 = pattern(5000, 14);
                assertEquals(0, n.pwriteSync(40960 - 7, 5000, buffer(d3, 3, keep), 0));
                System.arraycopy(d3, 0, model, 40960 - 7, 5000);
                assertEquals(2, d.bouncedRequests());
                // an unaligned read across all of it, then an aligned one
                BlockTestSupport.Buf r = new BlockTestSupport.Buf(60000 - 100);
                assertEquals(0, n.preadSync(100, 60000 - 100, r.iov));
                assertArrayEquals(Arrays.copyOfRange(model, 100, 60000), r.bytes());
                assertEquals(3, d.bouncedRequests());
                assertEquals(0, n.flushSync());
                assertEquals(aio, d.aioInUse(), "the engine asked for serves the node");
                n.unref();
            });
        }
        assertArrayEquals(model, Files.readAllBytes(backing), "the backing file holds every write, no byte more");
    }

    @ParameterizedTest
    @MethodSource("engines")
    void discardUnmapIsBlkdiscardTrimmedToSectorsAndTheLoopBackingFileShrinks(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio).withDiscard(FileOptions.Discard.UNMAP);
        byte[] model = pattern(4 << 20, 15);
        Path backing = BlockTestSupport.tempImage(dir, "backing.raw", model);
        long before = allocatedBlocks(backing);
        long discardedBefore;
        long discardedAfter;
        try (LoopDevice loop = LoopDevice.attach(backing, SECTOR);
                BlockTestSupport t = new BlockTestSupport()) {
            discardedBefore = loop.discardedSectors();
            t.main("discard on " + loop.device, () -> {
                BlockNode n = t.layer.openFile("dev", loop.device, o);
                FileDriver d = (FileDriver) n.driver();
                assertTrue(d.isBlockDevice());
                assertEquals(SECTOR, d.logicalBlockSize());
                // 1 MiB at 1 MiB: whole sectors
                assertEquals(0, n.pdiscardSync(1 << 20, 1 << 20));
                // [512, 12800): only the whole sectors [4096, 12288) can go; BLKDISCARD
                // would refuse the range as it is (EINVAL)
                assertEquals(0, n.pdiscardSync(512, 12800 - 512));
                // less than a sector: nothing to do, and no error
                assertEquals(0, n.pdiscardSync(20480 + 100, 1000));
                // the tail past the device's end is dropped
                assertEquals(0, n.pdiscardSync((4 << 20) - SECTOR, 2 * SECTOR));
                // unaligned write-zeroes on the device: zeroes written instead of fallocate
                assertEquals(0, n.pwriteZeroesSync(30000, 3000, BlockFlags.MAY_UNMAP));
                // aligned write-zeroes: fallocate(ZERO_RANGE) on the device
                assertEquals(0, n.pwriteZeroesSync(2 << 20, 8192, 0));
                BlockTestSupport.Buf r = new BlockTestSupport.Buf(3 << 20);
                assertEquals(0, n.preadSync(0, 3 << 20, r.iov));
                byte[] want = Arrays.copyOf(model, 3 << 20);
                Arrays.fill(want, 1 << 20, 2 << 20, (byte) 0);
                Arrays.fill(want, 4096, 12288, (byte) 0);
                Arrays.fill(want, 30000, 33000, (byte) 0);
                Arrays.fill(want, 2 << 20, (2 << 20) + 8192, (byte) 0);
                assertArrayEquals(want, r.bytes(), "discarded sectors read zeroes, their neighbours are intact");
                assertEquals(aio, d.aioInUse(), "the engine asked for serves the node");
                n.unref();
            });
            discardedAfter = loop.discardedSectors();
        }
        assertEquals(((1 << 20) + 8192 + SECTOR) / 512, discardedAfter - discardedBefore,
                "BLKDISCARD reached the device for exactly the whole sectors of each range");
        byte[] now = Files.readAllBytes(backing);
        assertEquals(4 << 20, now.length, "the device's size is its backing file's");
        assertArrayEquals(new byte[1 << 20], Arrays.copyOfRange(now, 1 << 20, 2 << 20));
        assertArrayEquals(Arrays.copyOfRange(model, 12288, 30000), Arrays.copyOfRange(now, 12288, 30000));
        assertArrayEquals(new byte[SECTOR], Arrays.copyOfRange(now, (4 << 20) - SECTOR, 4 << 20), "the last sector");
        long after = allocatedBlocks(backing);
        assertTrue(after <= before - ((1 << 20) + 8192 + SECTOR) / 512,
                "the loop driver punched the discarded ranges out of its backing file: " + before + " -> " + after
                        + " blocks");
    }
}
