package io.vblk.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.AioWait;
import io.vblk.aio.Errno;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockFlags;
import io.vblk.block.BlockNode;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.function.Consumer;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bounded metadata cache: least-recently-used eviction, dirty entries
 * written back through the owner's cleaner before they are dropped, pinned
 * entries never evicted; and whole images driven through two-entry caches.
 */
class MetadataCacheTest {
    private static final int TS = 4096;
    private static final int PENDING = Integer.MIN_VALUE;

    private static int await(BlockNode file, Consumer<BlockCompletion> op) {
        int[] r = {PENDING};
        op.accept(x -> r[0] = x);
        AioWait.pollWhile(file.context(), () -> r[0] == PENDING);
        return r[0];
    }

    @Test
    void evictsLeastRecentlyUsedAndWritesDirtyVictimsBack(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("tables");
        ByteBuffer content = ByteBuffer.allocate(8 * TS);
        for (int i = 0; i < 8; i++) {
            content.putLong(i * TS, 1000 + i);
        }
        Files.write(f, content.array());
        try (Qcow2Env env = new Qcow2Env()) {
            env.main("cache", () -> {
                BlockNode file = env.layer.openFile("tables", f, false);
                MetadataCache c = new MetadataCache("test", TS, 3, 8, () -> file);
                List<Integer> cleaned = new ArrayList<>();
                c.setCleaner((victim, done) -> {
                    cleaned.add(victim.key);
                    c.write(victim, done);
                });
                for (int k = 0; k < 3; k++) {
                    int key = k;
                    assertEquals(0, await(file, cb -> c.load(key, (long) key * TS, cb)));
                    assertEquals(1000 + k, c.peek(k, (long) k * TS).getLong(0), "loaded from disk");
                }
                assertNotNull(c.peek(0, 0)); // 0 becomes most recently used: 1 is now the oldest
                assertEquals(0, await(file, cb -> c.load(3, 3L * TS, cb)));
                assertNull(c.peek(1, TS), "least recently used entry evicted");
                assertEquals(3, c.resident());
                // make 2 dirty, pin 0 and 3: the only victim is dirty and goes through the cleaner
                MetadataCache.Entry e2 = c.peek(2, 2L * TS);
                e2.putLong(0, 4242);
                c.peek(0, 0).pins++;
                c.peek(3, 3L * TS).pins++;
                assertEquals(0, await(file, cb -> c.load(4, 4L * TS, cb)));
                assertEquals(List.of(2), cleaned, "the dirty victim was handed to the cleaner");
                assertNull(c.peek(2, 2L * TS));
                assertEquals(0, await(file, cb -> c.load(2, 2L * TS, cb)) == 0 ? 0 : 1, "reloaded after eviction");
                return null;
            });
            // everything pinned: no room, a clear error instead of a hang
            env.main("all pinned", () -> {
                BlockNode file = env.layer.node("tables");
                MetadataCache c = new MetadataCache("pinned", TS, 2, 8, () -> file);
                assertEquals(0, await(file, cb -> c.load(0, 0, cb)));
                assertEquals(0, await(file, cb -> c.load(1, TS, cb)));
                c.peek(0, 0).pins++;
                c.peek(1, TS).pins++;
                assertEquals(-Errno.EBUSY, await(file, cb -> c.load(2, 2L * TS, cb)));
                file.unref();
                return null;
            });
        }
        ByteBuffer after = ByteBuffer.wrap(Files.readAllBytes(f));
        assertEquals(4242, after.getLong(2 * TS), "the dirty table reached the disk before eviction");
    }

    @Test
    void createdTablesAreZeroedAndDirty(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("t");
        Files.write(f, new byte[TS * 2]);
        try (Qcow2Env env = new Qcow2Env()) {
            env.main("create", () -> {
                BlockNode file = env.layer.openFile("t", f, false);
                MetadataCache c = new MetadataCache("create", TS, 2, 4, () -> file);
                MetadataCache.Entry e = c.create(1, TS);
                assertTrue(e.dirty);
                assertEquals(0, e.getLong(7));
                assertSame(e, c.peek(1, TS));
                assertEquals(1, c.dirtyCount());
                e.putLong(1, 99);
                assertEquals(0, await(file, cb -> c.write(e, cb)));
                assertEquals(0, c.dirtyCount());
                file.unref();
                return null;
            });
        }
        assertEquals(99, ByteBuffer.wrap(Files.readAllBytes(f)).getLong(TS + 8));
    }

    /** Random I/O over sixteen L2 tables with room for two: every miss evicts, every eviction of a dirty table checkpoints. */
    @Test
    void tinyCachesUnderRandomIo(@TempDir Path dir) throws Exception {
        int size = 32 << 20;
        Path img = dir.resolve("tiny.qcow2");
        Qcow2.create(img, size, 4096, null, null);
        ImageModel model = new ImageModel(new byte[size], 4096);
        try (Qcow2Env env = new Qcow2Env(Qcow2Format.withCacheSizes(2, 2))) {
            BlockNode n = env.open("tiny", img, null, false);
            Random r = new Random(12);
            for (int i = 0; i < 400; i++) {
                int len = 1 + r.nextInt(20_000);
                long off = (long) (r.nextDouble() * (size - len));
                switch (r.nextInt(4)) {
                    case 0:
                    case 1: {
                        byte[] d = new byte[len];
                        r.nextBytes(d);
                        env.write(n, off, d);
                        model.write(off, d);
                        break;
                    }
                    case 2:
                        assertArrayEquals(model.slice(off, len), env.read(n, off, len));
                        break;
                    default:
                        env.writeZeroes(n, off, len, BlockFlags.MAY_UNMAP);
                        model.zero(off, len);
                }
            }
            Qcow2Driver d = Qcow2Env.driver(n);
            assertTrue(d.map().l2.evictions() > 50, d.describe());
            assertTrue(d.checkpoint().runs() > 10, "dirty evictions wrote metadata back: " + d.describe());
            assertTrue(d.map().l2.resident() <= 2 && d.refcounts().blocks.resident() <= 2, d.describe());
            assertArrayEquals(model.bytes, env.read(n, 0, size));
            env.close(n);
        }
        QemuTools.check(img);
        Path raw = dir.resolve("ref.raw");
        Files.write(raw, model.bytes);
        QemuTools.compareWithRaw(img, raw);
    }
}
