package io.vblk.block.rbd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.Errno;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockException;
import io.vblk.block.BlockFlags;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockStatus;
import io.vblk.block.IoVec;

import com.sun.jna.Memory;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The {@code rbd} driver through the BlockNode API against a one-node Ceph
 * cluster this class starts (once) and stops: data round trips both ways
 * with the {@code rbd} tool, flush, discard, write-zeroes (thick and
 * unmapping), block status, short reads, snapshots, resize, errors that name
 * what failed, completions in the home context, context moves under I/O and
 * close with requests in flight.
 */
@Tag("rbd")
class RbdDriverTest {
    private static final Duration BOUND = Duration.ofSeconds(120);
    private static final int MIB = 1 << 20;
    private static final long OBJECT = 4L << 20; // rbd's default object size (order 22)
    private static CephCluster cluster;
    private static final AtomicInteger IMAGES = new AtomicInteger();

    private MainLoop loop;
    private BlockLayer layer;

    @BeforeAll
    static void startCluster() throws Exception {
        cluster = CephCluster.start();
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (cluster != null) {
            cluster.close();
        }
    }

    @BeforeEach
    void setUp() {
        loop = new MainLoop();
        layer = new BlockLayer(loop);
    }

    @AfterEach
    void tearDown() {
        try {
            assertTrue(loop.failures().isEmpty(), loop.failures().toString());
        } finally {
            layer.close();
            loop.close();
        }
    }

    private static String newImage(long size) throws Exception {
        String name = "t" + IMAGES.incrementAndGet();
        cluster.rbd("create", "--size", (size / MIB) + "M", "rbd/" + name);
        return name;
    }

    private <T> T main(String what, Callable<T> task) {
        return loop.watchdog(BOUND).call(what, task);
    }

    private BlockNode open(String filename) {
        return main("open " + filename, () -> layer.openProtocol("disk", filename, false));
    }

    /** A native buffer as {@code segments} equal segments: the driver hands them to librbd as one iovec array. */
    private static final class Buf {
        final Memory mem;
        final IoVec iov;
        final int size;

        Buf(int size, int segments) {
            this.size = size;
            mem = new Memory(size);
            iov = new IoVec(segments);
            int seg = size / segments;
            for (int i = 0; i < segments; i++) {
                iov.add(Memory.nativeValue(mem) + (long) i * seg, i == segments - 1 ? size - i * seg : seg);
            }
        }

        Buf(byte[] content, int segments) {
            this(content.length, segments);
            mem.write(0, content, 0, content.length);
        }

        byte[] bytes() {
            byte[] b = new byte[size];
            mem.read(0, b, 0, size);
            return b;
        }
    }

    private static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    private byte[] read(BlockNode n, long off, int len) {
        Buf b = new Buf(len, 3);
        b.mem.setMemory(0, len, (byte) 0x5a);
        assertEquals(0, main("read", () -> n.preadSync(off, len, b.iov)));
        return b.bytes();
    }

    private void write(BlockNode n, long off, byte[] data) {
        Buf b = new Buf(data, 4);
        assertEquals(0, main("write", () -> n.pwriteSync(off, data.length, b.iov, 0)));
    }

    private void close(BlockNode n) {
        main("close", () -> {
            n.unref();
            return null;
        });
    }

    private byte[] export(String image, Path dir) throws Exception {
        Path out = dir.resolve(image + ".raw");
        cluster.rbd("export", "rbd/" + image, out.toString());
        return Files.readAllBytes(out);
    }

    @Test
    void writesByVblkReadBackWithRbdExportAndAfterReopen(@TempDir Path dir) throws Exception {
        String img = newImage(16 * MIB);
        byte[] a = random(3 * 4096, 1);
        byte[] b = random(MIB + 512, 2); // crosses the first 4 MiB object boundary below
        BlockNode n = open(cluster.filename(img));
        assertEquals("rbd", n.driver().formatName());
        assertEquals(16L * MIB, n.length());
        write(n, 4096, a);
        write(n, OBJECT - 4096, b);
        assertEquals(0, main("flush", n::flushSync));
        assertArrayEquals(a, read(n, 4096, a.length));
        assertArrayEquals(b, read(n, OBJECT - 4096, b.length));
        close(n);

        byte[] whole = export(img, dir);
        assertEquals(16 * MIB, whole.length);
        assertArrayEquals(a, Arrays.copyOfRange(whole, 4096, 4096 + a.length));
        assertArrayEquals(b, Arrays.copyOfRange(whole, (int) OBJECT - 4096, (int) OBJECT - 4096 + b.length));
        assertArrayEquals(new byte[4096], Arrays.copyOfRange(whole, 0, 4096), "untouched blocks read as zeroes");

        BlockNode again = open(cluster.filename(img));
        assertArrayEquals(b, read(again, OBJECT - 4096, b.length));
        close(again);
    }

    @Test
    void anImageWrittenByRbdImportReadsBackThroughVblk(@TempDir Path dir) throws Exception {
        byte[] content = random(5 * MIB, 3);
        Path src = dir.resolve("src.raw");
        Files.write(src, content);
        String img = "imp" + IMAGES.incrementAndGet();
        cluster.rbd("import", src.toString(), "rbd/" + img);
        BlockNode n = open(cluster.filename(img));
        assertEquals(content.length, n.length());
        assertArrayEquals(content, read(n, 0, content.length));
        close(n);
    }

    @Test
    void writeZeroesThickKeepsTheRangeAllocatedAndUnmappingDeallocatesIt() throws Exception {
        String img = newImage(16 * MIB);
        BlockNode n = open(cluster.filename(img));
        assertFalse(main("status", () -> n.blockStatus(0, 16L * MIB)).data(), "a new image is one hole");
        write(n, 0, random((int) OBJECT, 4));
        write(n, OBJECT, random((int) OBJECT, 5));
        BlockStatus s = main("status", () -> n.blockStatus(0, 16L * MIB));
        assertTrue(s.data(), s.toString());
        assertEquals(2 * OBJECT, s.bytes(), "two written objects, then the hole: " + s);

        assertEquals(0, main("zero thick", () -> n.pwriteZeroesSync(0, OBJECT, 0)));
        assertArrayEquals(new byte[(int) OBJECT], read(n, 0, (int) OBJECT));
        assertTrue(main("status", () -> n.blockStatus(0, OBJECT)).data(), "thick zeroes stay allocated");

        assertEquals(0, main("zero unmap", () -> n.pwriteZeroesSync(OBJECT, OBJECT, BlockFlags.MAY_UNMAP)));
        assertArrayEquals(new byte[(int) OBJECT], read(n, OBJECT, (int) OBJECT));
        BlockStatus hole = main("status", () -> n.blockStatus(OBJECT, 15L * MIB - OBJECT));
        assertFalse(hole.data(), "an unmapped object is a hole: " + hole);
        assertTrue(hole.zero(), hole.toString());
        close(n);
    }

    @Test
    void discardOfWholeObjectsReadsAsZeroesAndLeavesAHole() throws Exception {
        String img = newImage(12 * MIB);
        BlockNode n = open(cluster.filename(img));
        byte[] data = random((int) (3 * OBJECT), 6);
        write(n, 0, data);
        assertEquals(0, main("discard", () -> n.pdiscardSync(OBJECT, OBJECT)));
        byte[] back = read(n, 0, data.length);
        assertArrayEquals(Arrays.copyOfRange(data, 0, (int) OBJECT), Arrays.copyOfRange(back, 0, (int) OBJECT));
        assertArrayEquals(new byte[(int) OBJECT], Arrays.copyOfRange(back, (int) OBJECT, (int) (2 * OBJECT)));
        assertArrayEquals(Arrays.copyOfRange(data, (int) (2 * OBJECT), data.length),
                Arrays.copyOfRange(back, (int) (2 * OBJECT), data.length));
        BlockStatus s = main("status", () -> n.blockStatus(OBJECT, 2 * OBJECT));
        assertFalse(s.data(), s.toString());
        assertEquals(OBJECT, s.bytes(), "the hole ends where the third object begins: " + s);
        close(n);
    }

    @Test
    void aReadPastTheEndOfAnImageShrunkByAnotherClientIsZeroPadded() throws Exception {
        String img = newImage(8 * MIB);
        BlockNode n = open(cluster.filename(img));
        byte[] data = random(64 * 1024, 7);
        long off = 6L * MIB - 32 * 1024; // the new end falls in the middle of this range
        write(n, off, data);
        cluster.rbd("resize", "--allow-shrink", "--size", "6M", "rbd/" + img);
        assertEquals(8L * MIB, n.length(), "the node still has its old size until refreshed");
        byte[] back = read(n, off, data.length); // the buffer starts filled with 0x5a
        assertArrayEquals(Arrays.copyOfRange(data, 0, 32 * 1024), Arrays.copyOfRange(back, 0, 32 * 1024));
        assertArrayEquals(new byte[32 * 1024], Arrays.copyOfRange(back, 32 * 1024, back.length),
                "librbd returned a short read; the driver zero-filled the rest");
        assertEquals(6L * MIB, main("refresh", () -> ((RbdDriver) n.driver()).refreshLength()));
        close(n);
    }

    @Test
    void aSnapshotOpensReadOnlyWithItsOwnContent() throws Exception {
        String img = newImage(8 * MIB);
        byte[] before = random(8192, 8);
        byte[] after = random(8192, 9);
        BlockNode n = open(cluster.filename(img));
        write(n, 0, before);
        assertEquals(0, main("flush", n::flushSync));
        cluster.rbd("snap", "create", "rbd/" + img + "@s1");
        write(n, 0, after);
        String snapName = "rbd:rbd/" + img + "@s1:conf=" + cluster.conf();
        BlockException rw = assertThrows(BlockException.class,
                () -> main("open snap read-write", () -> layer.openProtocol("snap", snapName, false)));
        assertTrue(rw.getMessage().contains("rbd snapshots are always read-only"), rw.getMessage());
        BlockNode snap = main("open snap", () -> layer.openProtocol("snap", snapName, true));
        assertTrue(snap.isReadOnly(), "a snapshot node is read-only");
        assertEquals("s1", ((RbdDriver) snap.driver()).options().snapshot());
        assertArrayEquals(before, read(snap, 0, before.length));
        assertArrayEquals(after, read(n, 0, after.length));
        Buf b = new Buf(after, 1);
        int ret = main("write snap", () -> snap.pwriteSync(0, 8192, b.iov, 0));
        assertEquals(-Errno.EROFS, ret);
        assertArrayEquals(before, read(snap, 0, before.length), "the snapshot is unchanged");
        close(snap);
        close(n);
    }

    @Test
    void resizeGrowsTheImageForEveryClient() throws Exception {
        String img = newImage(8 * MIB);
        BlockNode n = open(cluster.filename(img));
        RbdDriver d = (RbdDriver) n.driver();
        assertEquals(0, main("resize", () -> {
            try (var s = n.drainedBegin()) {
                return d.truncate(24L * MIB);
            }
        }));
        assertEquals(24L * MIB, n.length());
        assertTrue(cluster.rbd("info", "rbd/" + img).contains("size 24 MiB"), cluster.rbd("info", "rbd/" + img));
        byte[] tail = random(4096, 10);
        write(n, 24L * MIB - 4096, tail);
        assertArrayEquals(tail, read(n, 24L * MIB - 4096, 4096));
        close(n);
    }

    @Test
    void openFailuresNameThePoolTheImageAndTheMonitors() throws Exception {
        BlockException pool = assertThrows(BlockException.class,
                () -> main("open", () -> layer.openProtocol("d1", "rbd:nopool/x:conf=" + cluster.conf(), false)));
        assertTrue(pool.getMessage().contains("pool 'nopool' does not exist"), pool.getMessage());
        BlockException image = assertThrows(BlockException.class,
                () -> main("open", () -> layer.openProtocol("d2", "rbd:rbd/noimage:conf=" + cluster.conf(), false)));
        assertTrue(image.getMessage().contains("image 'rbd/noimage' does not exist"), image.getMessage());
        // a monitor address nothing listens on (the cluster's port + 1 is not bound by it), a short mount timeout
        Path lonely = Files.createTempFile("vblk-nomon", ".conf");
        try {
            Files.writeString(lonely, "[global]\nmon host = v2:127.0.0.1:9\nauth client required = none\n");
            BlockException mon = assertThrows(BlockException.class, () -> main("open", () -> layer.openProtocol("d3",
                    "rbd:rbd/x:conf=" + lonely + ":client_mount_timeout=3", false)));
            assertTrue(mon.getMessage().contains("cannot connect to the Ceph cluster: monitors v2:127.0.0.1:9"),
                    mon.getMessage());
            assertTrue(mon.getMessage().contains("client_mount_timeout=3"), mon.getMessage());
        } finally {
            Files.deleteIfExists(lonely);
        }
        assertTrue(layer.nodes().isEmpty(), "no node is left from a failed open: " + layer.nodes());
    }

    @ParameterizedTest
    @EnumSource(RbdCompletionMode.class)
    void completionsRunInTheHomeContextAcrossMovesUnderIo(RbdCompletionMode mode) throws Exception {
        String img = newImage(8 * MIB);
        IOThread io0 = loop.newIOThread("io0");
        BlockBackend blk = main("open", () -> {
            BlockNode n = layer.addNode("disk", RbdDriver.open(cluster.options(img), mode), false);
            assertEquals(mode, ((RbdDriver) n.driver()).completionMode());
            BlockBackend be = layer.newBackend("blk0");
            be.attach(n);
            n.unref();
            return be;
        });
        Mixer mix = new Mixer(blk, 8, 64 * 1024);
        CompletableFuture<Void> done = main("start", mix::start);
        int moves = main("moves under I/O", () -> {
            int m = 0;
            for (; m < 40; m++) {
                blk.setAioContext(m % 2 == 0 ? io0.context() : loop.context());
                // wait (bounded) until a few requests completed in the new context before moving again
                long target = mix.completed.get() + 4;
                io.vblk.aio.AioWait.pollWhile(loop.context(), () -> mix.completed.get() < target
                        && mix.problem.get() == null);
            }
            mix.stop = true;
            blk.drain();
            return m;
        });
        loop.watchdog(BOUND).await("mixer end", done);
        assertNull(mix.problem.get(), mix.problem.get());
        assertEquals(40, moves);
        assertTrue(mix.completed.get() >= 160, "I/O flowed across the moves: " + mix.completed.get());
        assertEquals(0, mix.wrongThread.get(), "every completion ran in the backend's home thread");
        byte[] disk = main("read back", () -> {
            Buf b = new Buf(8 * MIB, 1);
            int r = blk.root().preadSync(0, 8L * MIB, b.iov);
            return r == 0 ? b.bytes() : null;
        });
        assertArrayEquals(mix.model, disk, "the image holds exactly what the mixer wrote");
        main("close", () -> {
            layer.removeBackend(blk);
            return null;
        });
    }

    @ParameterizedTest
    @EnumSource(RbdCompletionMode.class)
    void closingANodeWithRequestsInFlightWaitsForThemAndCompletesEach(RbdCompletionMode mode) throws Exception {
        String img = newImage(8 * MIB);
        BlockNode n = main("open", () -> layer.addNode("disk", RbdDriver.open(cluster.options(img), mode), false));
        int count = 32;
        AtomicInteger ok = new AtomicInteger();
        AtomicInteger calls = new AtomicInteger();
        List<Buf> bufs = new java.util.ArrayList<>();
        for (int i = 0; i < count; i++) {
            bufs.add(new Buf(random(65536, 100 + i), 2));
        }
        main("submit and close", () -> {
            for (int i = 0; i < count; i++) {
                n.pwritev((long) i * 65536, 65536, bufs.get(i).iov, 0, ret -> {
                    calls.incrementAndGet();
                    if (ret == 0) {
                        ok.incrementAndGet();
                    }
                });
            }
            assertTrue(n.inFlight() > 0, "librbd has not answered yet");
            n.unref(); // waits for every request, then rbd_close
            return null;
        });
        assertEquals(count, calls.get(), "every request completed exactly once before the close returned");
        assertEquals(count, ok.get());
        assertTrue(n.isClosed());
        BlockNode again = open(cluster.filename(img));
        assertArrayEquals(bufs.get(31).bytes(), read(again, 31L * 65536, 65536));
        close(again);
    }

    @Test
    void theFilenameFormRoundTripsQemusSyntax() {
        RbdOptions o = RbdOptions.parseFilename("rbd:pool/ns/img@snap:conf=/etc/ceph/x.conf:id=bob:rbd_cache=false");
        assertEquals("pool", o.pool());
        assertEquals("ns", o.namespace());
        assertEquals("img", o.image());
        assertEquals("snap", o.snapshot());
        assertEquals("/etc/ceph/x.conf", o.conf());
        assertEquals("bob", o.user());
        assertEquals("false", o.radosConf().get("rbd_cache"));
        assertTrue(o.opensReadOnly());
        assertEquals(o, RbdOptions.parseFilename(o.toFilename()));
        RbdOptions esc = RbdOptions.parseFilename("rbd:p/a\\:b\\@c");
        assertEquals("a:b@c", esc.image());
        assertNull(esc.snapshot());
        assertThrows(BlockException.class, () -> RbdOptions.parseFilename("rbd:justpool"));
        RbdOptions kv = RbdOptions.fromKeyValues(java.util.Map.of("pool", "p", "image", "i", "read-only", "on",
                "cache.direct", "on", "user", "u"));
        assertTrue(kv.readOnly() && kv.cacheDirect());
        BlockException bad = assertThrows(BlockException.class,
                () -> RbdOptions.fromKeyValues(java.util.Map.of("pool", "p", "image", "i", "bogus", "1")));
        assertTrue(bad.getMessage().contains("unknown option 'bogus'"), bad.getMessage());
        assertSame(null, BlockLayer.findProtocol("./rbd:x"));
        assertEquals("rbd", BlockLayer.findProtocol("rbd:p/i").name());
    }

    /**
     * Random writes then verifying reads, {@code depth} slots each in its own
     * region (so requests in flight never overlap), resubmitted from the
     * completions in the backend's home context; counts completions that ran
     * on another thread.
     */
    private static final class Mixer {
        final BlockBackend blk;
        final byte[] model;
        final int region;
        final Slot[] slots;
        final AtomicInteger completed = new AtomicInteger();
        final AtomicInteger wrongThread = new AtomicInteger();
        final AtomicReference<String> problem = new AtomicReference<>();
        volatile boolean stop;
        private int active;
        private final CompletableFuture<Void> done = new CompletableFuture<>();
        private final Random rnd = new Random(11);

        Mixer(BlockBackend blk, int depth, int region) {
            this.blk = blk;
            this.model = new byte[(int) blk.length()];
            this.region = region;
            slots = new Slot[depth];
            for (int i = 0; i < depth; i++) {
                slots[i] = new Slot(i);
            }
        }

        CompletableFuture<Void> start() {
            for (Slot s : slots) {
                active++;
                s.write();
            }
            return done;
        }

        private final class Slot {
            final int index;
            final Buf buf = new Buf(4096, 2);
            final Buf check = new Buf(4096, 1);
            long off;

            Slot(int index) {
                this.index = index;
            }

            void write() {
                off = (long) index * region + 4096L * rnd.nextInt(region / 4096);
                byte[] data = random(4096, rnd.nextLong());
                buf.mem.write(0, data, 0, data.length);
                System.arraycopy(data, 0, model, (int) off, data.length);
                blk.pwritev(off, 4096, buf.iov, 0, ret -> {
                    if (!completion("write", ret)) {
                        return;
                    }
                    blk.preadv(off, 4096, check.iov, 0, r2 -> {
                        if (!completion("read", r2)) {
                            return;
                        }
                        if (!Arrays.equals(check.bytes(), Arrays.copyOfRange(model, (int) off, (int) off + 4096))) {
                            problem.compareAndSet(null, "slot " + index + " read back other data at " + off);
                        }
                        next();
                    });
                });
            }

            private boolean completion(String what, int ret) {
                completed.incrementAndGet();
                if (Thread.currentThread() != blk.context().homeThread()) {
                    wrongThread.incrementAndGet();
                }
                if (ret != 0) {
                    problem.compareAndSet(null, what + " at " + off + " failed: " + ret);
                    finish();
                    return false;
                }
                return true;
            }

            private void next() {
                if (stop || problem.get() != null) {
                    finish();
                } else {
                    write();
                }
            }

            private void finish() {
                if (--active == 0) {
                    done.complete(null);
                }
            }
        }
    }
}
