package io.vblk.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;

import io.vblk.aio.AioWait;
import io.vblk.block.BlockFlags;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockStatus;
import io.vblk.block.IoVec;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Copy-on-write of partial clusters: from the backing file, from zero
 * clusters, from preallocated zero clusters and from compressed clusters;
 * concurrent writes into one unallocated cluster (the second waits for the
 * first's allocation); and the block status each step leaves.
 */
class CopyOnWriteTest {
    private static final int CS = 65536;
    private static final int SIZE = 16 * CS;

    private static byte[] baseContent() {
        byte[] b = new byte[SIZE];
        new Random(2).nextBytes(b);
        return b;
    }

    private static Path overlay(Path dir, byte[] base) throws Exception {
        Files.write(dir.resolve("base.raw"), base);
        Path img = dir.resolve("top.qcow2");
        Qcow2.create(img, SIZE, CS, "base.raw", "raw");
        return img;
    }

    @Test
    void partialWritesCopyTheRestOfTheClusterFromTheBackingFile(@TempDir Path dir) throws Exception {
        byte[] base = baseContent();
        Path img = overlay(dir, base);
        ImageModel model = new ImageModel(base.clone(), CS);
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("top", img, null, false);
            BlockStatus before = env.main("status", () -> n.blockStatus(0, SIZE));
            assertFalse(before.allocated(), "a fresh overlay allocates nothing");
            assertEquals(SIZE, before.bytes());
            byte[] one = {0x5a};
            env.write(n, 3 * CS + 1234, one); // one byte in the middle of cluster 3
            model.write(3 * CS + 1234, one);
            byte[] span = Qcow2Env.pattern(2 * CS + 100, 0x6b); // unaligned over clusters 5..7
            env.write(n, 5 * CS + 500, span);
            model.write(5 * CS + 500, span);
            assertArrayEquals(model.bytes, env.read(n, 0, SIZE));
            BlockStatus s3 = env.main("status", () -> n.blockStatus(3L * CS, CS));
            assertTrue(s3.allocated() && s3.data() && s3.bytes() == CS, s3.toString());
            BlockStatus s4 = env.main("status", () -> n.blockStatus(4L * CS, CS));
            assertFalse(s4.allocated(), s4.toString());
            BlockStatus s5 = env.main("status", () -> n.blockStatus(5L * CS, 8L * CS));
            assertEquals(3L * CS, s5.bytes(), "clusters 5..7 form one allocated run: " + s5);
            env.close(n);
        }
        QemuTools.check(img);
        Path raw = dir.resolve("ref.raw");
        Files.write(raw, model.bytes);
        QemuTools.compareWithRaw(img, raw);
    }

    @Test
    void zeroClustersHideTheBackingFileAndCowFromZeroes(@TempDir Path dir) throws Exception {
        byte[] base = baseContent();
        Path img = overlay(dir, base);
        ImageModel model = new ImageModel(base.clone(), CS);
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("top", img, null, false);
            env.writeZeroes(n, 2L * CS, 2L * CS, BlockFlags.MAY_UNMAP);
            model.zero(2L * CS, 2L * CS);
            BlockStatus z = env.main("status", () -> n.blockStatus(2L * CS, 2L * CS));
            assertTrue(z.allocated() && z.zero() && !z.data() && z.bytes() == 2L * CS, z.toString());
            env.write(n, 2L * CS + 100, Qcow2Env.pattern(10, 1)); // COW from zeroes, not from the backing file
            model.write(2L * CS + 100, Qcow2Env.pattern(10, 1));
            // allocated data, then zeroed without unmap: a preallocated zero cluster
            env.write(n, 8L * CS, Qcow2Env.pattern(CS, 2));
            model.write(8L * CS, Qcow2Env.pattern(CS, 2));
            env.writeZeroes(n, 8L * CS, CS, 0);
            model.zero(8L * CS, CS);
            BlockStatus za = env.main("status", () -> n.blockStatus(8L * CS, CS));
            assertTrue(za.allocated() && za.zero(), za.toString());
            env.write(n, 8L * CS + 4096, Qcow2Env.pattern(100, 3));
            model.write(8L * CS + 4096, Qcow2Env.pattern(100, 3));
            // partial write-zeroes over backing data: written as zeroes with COW around them
            env.writeZeroes(n, 10L * CS + 1000, 3000, 0);
            model.zero(10L * CS + 1000, 3000);
            // discard hides the backing file too (zero flag on version 3)
            env.discard(n, 12L * CS, 2L * CS);
            model.discard(12L * CS, 2L * CS);
            assertArrayEquals(model.bytes, env.read(n, 0, SIZE));
            env.close(n);
        }
        QemuTools.check(img);
        Path raw = dir.resolve("ref.raw");
        Files.write(raw, model.bytes);
        QemuTools.compareWithRaw(img, raw);
    }

    @Test
    void writesIntoCompressedClustersReallocateThem(@TempDir Path dir) throws Exception {
        byte[] content = QemuImagesReadTest.compressible(SIZE, 4);
        Path raw = dir.resolve("src.raw");
        Files.write(raw, content);
        Path img = dir.resolve("c.qcow2");
        QemuTools.img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=" + CS, raw.toString(),
                img.toString());
        ImageModel model = new ImageModel(content.clone(), CS);
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("c", img, null, false);
            Random r = new Random(4);
            for (int i = 0; i < 40; i++) {
                int len = 1 + r.nextInt(3 * CS);
                int off = r.nextInt(SIZE - len);
                byte[] d = new byte[len];
                r.nextBytes(d);
                env.write(n, off, d);
                model.write(off, d);
            }
            env.discard(n, 0, CS);
            model.discard(0, CS);
            assertArrayEquals(model.bytes, env.read(n, 0, SIZE));
            env.close(n);
        }
        QemuTools.check(img); // no leaks: the compressed clusters' references were dropped
        Path ref = dir.resolve("ref.raw");
        Files.write(ref, model.bytes);
        QemuTools.compareWithRaw(img, ref);
    }

    /**
     * Sixteen writes into different parts of the same unallocated clusters,
     * all in flight together: the first allocates, the others wait for its
     * allocation run and then write in place; nothing is lost or leaked.
     */
    @Test
    void concurrentWritesIntoOneUnallocatedClusterSerialiseOnItsAllocation(@TempDir Path dir) throws Exception {
        byte[] base = baseContent();
        Path img = overlay(dir, base);
        ImageModel model = new ImageModel(base.clone(), CS);
        int writes = 16;
        int piece = CS / writes;
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("top", img, null, false);
            env.main("concurrent writes", () -> {
                int[] done = {0};
                int[] errors = {0};
                Memory m = new Memory((long) writes * piece);
                for (int i = 0; i < writes; i++) {
                    byte[] d = Qcow2Env.pattern(piece - 3, 0x10 + i); // leaves gaps COW must fill
                    m.write((long) i * piece, d, 0, d.length);
                    model.write(6L * CS + (long) i * piece + 1, d);
                    IoVec v = new IoVec(1);
                    v.add(Memory.nativeValue(m) + (long) i * piece, d.length);
                    n.pwritev(6L * CS + (long) i * piece + 1, d.length, v, 0, ret -> {
                        if (ret < 0) {
                            errors[0]++;
                        }
                        done[0]++;
                    });
                }
                AioWait.pollWhile(n.context(), () -> done[0] < writes);
                assertEquals(0, errors[0]);
                return null;
            });
            assertArrayEquals(model.bytes, env.read(n, 0, SIZE));
            assertEquals(0, Qcow2Env.driver(n).runsInFlight());
            env.close(n);
        }
        QemuTools.check(img);
        Path raw = dir.resolve("ref.raw");
        Files.write(raw, model.bytes);
        QemuTools.compareWithRaw(img, raw);
    }

    @Test
    void overlayLargerThanItsBackingFileReadsZeroesPastIt(@TempDir Path dir) throws Exception {
        byte[] base = new byte[CS + 512];
        new Random(8).nextBytes(base);
        Files.write(dir.resolve("small.raw"), base);
        Path img = dir.resolve("big.qcow2");
        Qcow2.create(img, 4L * CS, CS, "small.raw", "raw");
        byte[] model = new byte[4 * CS];
        System.arraycopy(base, 0, model, 0, base.length);
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("big", img, null, false);
            env.write(n, CS + 100, Qcow2Env.pattern(10, 9)); // COW tail reaches past the backing file
            System.arraycopy(Qcow2Env.pattern(10, 9), 0, model, CS + 100, 10);
            assertArrayEquals(model, env.read(n, 0, 4 * CS));
            env.close(n);
        }
        QemuTools.check(img);
    }
}
