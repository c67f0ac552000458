package io.vblk.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;

import io.vblk.aio.Errno;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Random;
import java.util.function.Consumer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Truncated, corrupt and unsupported images give a clear
 * {@link BlockException} naming the problem, never another exception, and
 * leave no node behind; read-only-only features refuse writing; probing finds
 * qcow2 by its magic and an explicit format overrides probing.
 */
class HeaderErrorsTest {
    private static final int SIZE = 1 << 20;

    private static Path fresh(Path dir, String name) {
        Path img = dir.resolve(name);
        Qcow2.create(img, SIZE, 65536, null, null);
        return img;
    }

    private static void patch(Path img, Consumer<ByteBuffer> change) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(65536);
            ch.read(b, 0);
            change.accept(b);
            b.rewind();
            ch.write(b, 0);
        }
    }

    private static void truncate(Path img, long len) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.WRITE)) {
            ch.truncate(len);
        }
    }

    /** Opening fails with a BlockException whose message contains {@code words}, and no node is left. */
    private static void refused(Path img, String format, boolean readOnly, String words) {
        try (Qcow2Env env = new Qcow2Env()) {
            BlockException e = assertThrows(BlockException.class, () -> env.open("disk", img, format, readOnly),
                    "opening should fail with '" + words + "'");
            assertTrue(e.getMessage().contains(words), () -> "message '" + e.getMessage() + "' should mention '" + words + "'");
            assertEquals(0, env.layer.nodes().size(), "a failed open leaves no node");
        }
    }

    @Test
    void truncatedImages(@TempDir Path dir) throws Exception {
        Path a = fresh(dir, "a.qcow2");
        truncate(a, 50);
        refused(a, "qcow2", true, "truncated header");
        Path b = fresh(dir, "b.qcow2");
        truncate(b, 100);
        refused(b, "qcow2", true, "truncated version 3 header");
        Path c = fresh(dir, "c.qcow2");
        truncate(c, 65536 * 2 + 100);
        refused(c, "qcow2", true, "truncated image");
        Path d = dir.resolve("empty.qcow2");
        Files.write(d, new byte[0]);
        refused(d, "qcow2", true, "truncated header");
    }

    @Test
    void probingAndExplicitFormat(@TempDir Path dir) throws Exception {
        Path img = fresh(dir, "p.qcow2");
        Path raw = dir.resolve("x.raw");
        Files.write(raw, new byte[SIZE]);
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode q = env.open("q", img, null, true);
            assertEquals("qcow2", q.driver().formatName(), "probed by magic");
            BlockNode r = env.open("r", raw, null, true);
            assertEquals("raw", r.driver().formatName());
            BlockNode asRaw = env.open("asraw", img, "raw", true);
            assertEquals("raw", asRaw.driver().formatName(), "an explicit format overrides probing");
            env.close(q);
            env.close(r);
            env.close(asRaw);
        }
        refused(raw, "qcow2", true, "not a qcow2 image");
    }

    @Test
    void unsupportedFeaturesAreNamed(@TempDir Path dir) throws Exception {
        Object[][] cases = {
            {(Consumer<ByteBuffer>) b -> b.putInt(4, 4), "qcow2 version 4"},
            {(Consumer<ByteBuffer>) b -> b.putInt(20, 22), "cluster_bits 22"},
            {(Consumer<ByteBuffer>) b -> b.putInt(32, 1), "encryption"},
            {(Consumer<ByteBuffer>) b -> b.putInt(32, 2), "LUKS"},
            {(Consumer<ByteBuffer>) b -> b.putLong(72, 1L << 2), "external data file"},
            {(Consumer<ByteBuffer>) b -> b.putLong(72, 1L << 4), "extended L2"},
            {(Consumer<ByteBuffer>) b -> {
                b.putLong(72, 1L << 3);
                b.put(104, (byte) 1);
            }, "zstd"},
            {(Consumer<ByteBuffer>) b -> b.putLong(72, 1L << 9), "unknown incompatible feature bit 9"},
            {(Consumer<ByteBuffer>) b -> b.putInt(96, 7), "refcount_order 7"},
            {(Consumer<ByteBuffer>) b -> b.putInt(100, 20), "invalid header_length"},
            {(Consumer<ByteBuffer>) b -> b.putLong(24, 1L << 50), "L1 table has"},
            {(Consumer<ByteBuffer>) b -> b.putLong(40, 12345), "not a cluster-aligned offset"},
            {(Consumer<ByteBuffer>) b -> b.putInt(112 + 4, 70000), "overruns the header area"},
            {(Consumer<ByteBuffer>) b -> {
                b.putLong(8, 65500);
                b.putInt(16, 100);
            }, "outside the first cluster"},
        };
        int i = 0;
        for (Object[] c : cases) {
            Path img = fresh(dir, "u" + i++ + ".qcow2");
            @SuppressWarnings("unchecked")
            Consumer<ByteBuffer> change = (Consumer<ByteBuffer>) c[0];
            patch(img, change);
            refused(img, null, true, (String) c[1]);
        }
    }

    @Test
    void readOnlyFeaturesRefuseWriting(@TempDir Path dir) throws Exception {
        Object[][] cases = {
            {(Consumer<ByteBuffer>) b -> b.putLong(72, 1L), "dirty bit"},
            {(Consumer<ByteBuffer>) b -> b.putLong(72, 2L), "marked corrupt"},
            {(Consumer<ByteBuffer>) b -> b.putInt(60, 1), "internal snapshots"},
        };
        int i = 0;
        for (Object[] c : cases) {
            Path img = fresh(dir, "w" + i++ + ".qcow2");
            @SuppressWarnings("unchecked")
            Consumer<ByteBuffer> change = (Consumer<ByteBuffer>) c[0];
            patch(img, change);
            refused(img, "qcow2", false, (String) c[1]);
            try (Qcow2Env env = new Qcow2Env()) {
                BlockNode n = env.open("ro", img, "qcow2", true);
                assertArrayEquals(new byte[4096], env.read(n, 0, 4096), "read-only access works");
                n.setReadOnly(false);
                int ret = env.main("write", () -> {
                    Memory m = new Memory(512);
                    IoVec v = new IoVec(1);
                    v.add(Memory.nativeValue(m), 512);
                    return n.pwriteSync(0, 512, v, 0);
                });
                assertEquals(-Errno.EROFS, ret, "writes stay refused when the node is made writable");
                env.close(n);
            }
        }
    }

    @Test
    void missingOrLoopingBackingFiles(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("orphan.qcow2");
        Qcow2.create(img, SIZE, 65536, "gone.raw", "raw");
        refused(img, null, true, "cannot open backing file 'gone.raw'");
        Path self = dir.resolve("self.qcow2");
        Qcow2.create(self, SIZE, 65536, "self.qcow2", "qcow2");
        refused(self, null, true, "leads back into its own backing chain");
        Path url = dir.resolve("url.qcow2");
        Qcow2.create(url, SIZE, 65536, "nbd://host/export", "raw");
        refused(url, null, true, "only file paths are supported");
    }

    @Test
    void autoclearBitsAreClearedBeforeTheFirstWrite(@TempDir Path dir) throws Exception {
        Path img = fresh(dir, "ac.qcow2");
        patch(img, b -> b.putLong(88, 1L));
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("ac", img, null, false);
            env.read(n, 0, 512);
            assertEquals(1L, autoclear(img), "reading leaves the bits alone");
            env.write(n, 0, Qcow2Env.pattern(512, 7));
            assertEquals(0L, autoclear(img), "the first write cleared them");
            env.close(n);
        }
        QemuTools.check(img);
    }

    private static long autoclear(Path img) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(8);
            ch.read(b, 88);
            return b.getLong(0);
        }
    }

    @Test
    void creationArgumentsAreChecked(@TempDir Path dir) {
        assertThrows(BlockException.class, () -> Qcow2.create(dir.resolve("a"), SIZE, 1000, null, null));
        assertThrows(BlockException.class, () -> Qcow2.create(dir.resolve("b"), SIZE, 4 << 20, null, null));
        assertThrows(BlockException.class, () -> Qcow2.create(dir.resolve("c"), -1, 65536, null, null));
        assertThrows(BlockException.class, () -> Qcow2.create(dir.resolve("d"), SIZE, 65536, null, "raw"));
        BlockException e = assertThrows(BlockException.class,
                () -> Qcow2.create(dir.resolve("e"), SIZE, 512, "x".repeat(600), "raw"));
        assertTrue(e.getMessage().contains("does not fit"), e.getMessage());
    }

    @Test
    void backingSizeIsTakenWhenSizeIsZero(@TempDir Path dir) throws Exception {
        Path base = dir.resolve("base.qcow2");
        Qcow2.create(base, 3 << 20, 65536, null, null);
        Path top = dir.resolve("top.qcow2");
        Qcow2.create(top, 0, 65536, "base.qcow2", "qcow2");
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("top", top, null, true);
            assertEquals(3 << 20, n.length());
            env.close(n);
        }
    }

    /** Random damage to the header: either a clean refusal or a working image; nothing else. */
    @Test
    void randomHeaderDamageNeverCrashes(@TempDir Path dir) throws Exception {
        Random r = new Random(11);
        Path good = dir.resolve("good.qcow2");
        Qcow2.create(good, SIZE, 4096, "base.raw", "raw");
        Files.write(dir.resolve("base.raw"), new byte[SIZE]);
        byte[] original = Files.readAllBytes(good);
        int opened = 0;
        int refusedCount = 0;
        try (Qcow2Env env = new Qcow2Env()) {
            for (int i = 0; i < 300; i++) {
                byte[] img = original.clone();
                int flips = 1 + r.nextInt(4);
                for (int f = 0; f < flips; f++) {
                    int at = r.nextInt(i % 3 == 0 ? 4096 : i % 3 == 1 ? 112 : img.length);
                    img[at] = (byte) (r.nextBoolean() ? r.nextInt() : img[at] ^ (1 << r.nextInt(8)));
                }
                Path p = dir.resolve("fuzz.qcow2");
                Files.write(p, img);
                try {
                    boolean rw = i % 2 == 0;
                    BlockNode n = env.open("fuzz", p, "qcow2", !rw);
                    opened++;
                    long at = r.nextInt(SIZE - 8192);
                    env.main("read and write", () -> {
                        Memory m = new Memory(8192);
                        IoVec v = new IoVec(1);
                        v.add(Memory.nativeValue(m), 8192);
                        long len = Math.max(0, Math.min(8192, n.length() - at));
                        // each may fail with -EIO on a damaged table; none may hang or throw
                        n.preadSync(at, len, v);
                        if (rw) {
                            n.pwriteSync(at, len, v, 0);
                            n.flushSync();
                        }
                        return null;
                    });
                    env.close(n);
                } catch (BlockException e) {
                    refusedCount++;
                }
                assertEquals(0, env.layer.nodes().size(), "no node left behind after attempt " + i);
            }
        }
        assertTrue(opened > 0 && refusedCount > 0, "both outcomes seen: opened " + opened + ", refused " + refusedCount);
    }
}
