package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.sun.jna.Memory;

import io.vblk.aio.AioContext;
import io.vblk.aio.Errno;
import io.vblk.aio.IOThread;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The {@code file} driver's suite, run once per aio engine ({@code threads}
 * and {@code io_uring}): the two must be indistinguishable to the block
 * layer. The io_uring runs are skipped, saying why, only when this host
 * refuses io_uring_setup (a seccomp profile, {@code io_uring_disabled}).
 */
@Tag("concurrency")
class FileDriverSuiteTest {
    @TempDir
    Path dir;

    static Stream<FileOptions.Aio> engines() {
        return Stream.of(FileOptions.Aio.THREADS, FileOptions.Aio.IO_URING);
    }

    /** The engine's options; io_uring where the host refuses it is an assumption failure, not a pass. */
    static FileOptions opts(FileOptions.Aio aio) {
        if (aio == FileOptions.Aio.IO_URING) {
            String why = LuringState.unavailableReason();
            assumeTrue(why == null, "io_uring is refused on this host: " + why);
        }
        return FileOptions.defaults().withAio(aio);
    }

    static byte[] pattern(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** A multi-segment vector over {@code mem}: segments of 512, 3584, and the rest (guest-like scatter). */
    private static IoVec scattered(Memory mem, int n) {
        IoVec v = new IoVec(3);
        long a = Memory.nativeValue(mem);
        int s1 = Math.min(512, n);
        int s2 = Math.min(3584, n - s1);
        v.add(a, s1);
        v.add(a + s1, s2);
        v.add(a + s1 + s2, n - s1 - s2);
        return v;
    }

    static long allocatedBlocks(Path p) {
        int fd = FileIo.open(p.toString(), FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        try {
            Memory st = new Memory(FileIo.STATX_SIZE);
            st.clear();
            assertEquals(0, FileIo.statx(fd, "", FileIo.AT_EMPTY_PATH, 0x400 /* STATX_BLOCKS */, st));
            return st.getLong(48);
        } finally {
            FileIo.close(fd);
        }
    }

    private static void assertEngine(BlockNode n, FileOptions.Aio aio) {
        assertEquals(aio, ((FileDriver) n.driver()).aioInUse(), "the engine asked for serves the node");
    }

    @ParameterizedTest
    @MethodSource("engines")
    void readWriteFlushRoundTripOnScatteredBuffers(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 20]);
        byte[] data = pattern(12288, 1);
        try (BlockTestSupport t = new BlockTestSupport()) {
            byte[] back = t.main("io", () -> {
                BlockNode n = t.layer.openFile("f", img, o);
                Memory w = new Memory(data.length);
                w.write(0, data, 0, data.length);
                assertEquals(0, n.pwriteSync(40960, data.length, scattered(w, data.length), 0));
                assertEquals(0, n.pwriteSync(100, 7, scattered(w, 7), BlockFlags.FUA), "byte-granular, FUA");
                assertEquals(0, n.flushSync());
                Memory r = new Memory(data.length);
                r.clear();
                assertEquals(0, n.preadSync(40960, data.length, scattered(r, data.length)));
                assertEngine(n, aio);
                n.unref();
                byte[] b = new byte[data.length];
                r.read(0, b, 0, b.length);
                return b;
            });
            assertArrayEquals(data, back);
        }
        byte[] file = Files.readAllBytes(img);
        assertArrayEquals(data, Arrays.copyOfRange(file, 40960, 40960 + data.length));
        assertArrayEquals(Arrays.copyOf(data, 7), Arrays.copyOfRange(file, 100, 107));
    }

    @ParameterizedTest
    @MethodSource("engines")
    void aShortReadAtEndOfFileIsZeroFilledAndAWritePastItGrowsTheFile(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio);
        byte[] content = pattern(10000, 2);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", content);
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("io", () -> {
                BlockNode n = t.layer.openFile("f", img, o);
                BlockTestSupport.Buf b = new BlockTestSupport.Buf(8192);
                byte[] junk = new byte[8192];
                Arrays.fill(junk, (byte) 0xAA);
                b.fill(junk);
                assertEquals(0, n.preadSync(8192, 8192, b.iov));
                byte[] want = new byte[8192];
                System.arraycopy(content, 8192, want, 0, 10000 - 8192);
                assertArrayEquals(want, b.bytes(), "file bytes, then zeroes past EOF");
                BlockTestSupport.Buf w = new BlockTestSupport.Buf(4096).fill(pattern(4096, 3));
                assertEquals(0, n.pwriteSync(20480, 4096, w.iov, 0));
                assertEquals(24576, n.length());
                n.unref();
            });
        }
        assertEquals(24576, Files.size(img));
    }

    @ParameterizedTest
    @MethodSource("engines")
    void discardPunchesAHoleOnlyWithDiscardUnmap(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio);
        byte[] content = pattern(1 << 20, 4);
        Path ignore = BlockTestSupport.tempImage(dir, "ignore.raw", content);
        Path unmap = BlockTestSupport.tempImage(dir, "unmap.raw", content);
        long before = allocatedBlocks(unmap);
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("discard", () -> {
                BlockNode a = t.layer.openFile("a", ignore, o);
                BlockNode b = t.layer.openFile("b", unmap, o.withDiscard(FileOptions.Discard.UNMAP));
                assertEquals(0, a.pdiscardSync(0, 1 << 20));
                assertEquals(0, b.pdiscardSync(256 << 10, 512 << 10));
                a.unref();
                b.unref();
            });
        }
        assertArrayEquals(content, Files.readAllBytes(ignore), "discard=ignore leaves the file alone");
        assertEquals(before, allocatedBlocks(ignore));
        byte[] now = Files.readAllBytes(unmap);
        assertArrayEquals(new byte[512 << 10], Arrays.copyOfRange(now, 256 << 10, 768 << 10), "the hole reads zeroes");
        assertArrayEquals(Arrays.copyOf(content, 256 << 10), Arrays.copyOf(now, 256 << 10));
        assertEquals(1 << 20, now.length, "KEEP_SIZE");
        assertTrue(allocatedBlocks(unmap) <= before - (512 << 10) / 512,
                "the host file shrank: " + allocatedBlocks(unmap) + " of " + before + " blocks");
    }

    @ParameterizedTest
    @MethodSource("engines")
    void writeZeroesZeroesTheRangeAndMayUnmapDeallocatesIt(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio).withDiscard(FileOptions.Discard.UNMAP);
        byte[] content = pattern(1 << 20, 5);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", content);
        long before = allocatedBlocks(img);
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("zeroes", () -> {
                BlockNode n = t.layer.openFile("f", img, o);
                assertEquals(0, n.pwriteZeroesSync(4096, 8192, 0));
                assertEquals(0, n.pwriteZeroesSync(512 << 10, 256 << 10, BlockFlags.MAY_UNMAP));
                assertEquals(0, n.pwriteZeroesSync(1 << 20, 4096, 0), "past EOF: grows the file");
                assertEquals((1 << 20) + 4096, n.length());
                n.unref();
            });
        }
        byte[] now = Files.readAllBytes(img);
        byte[] want = Arrays.copyOf(content, (1 << 20) + 4096);
        Arrays.fill(want, 4096, 4096 + 8192, (byte) 0);
        Arrays.fill(want, 512 << 10, 768 << 10, (byte) 0);
        assertArrayEquals(want, now);
        long after = allocatedBlocks(img);
        assertTrue(after <= before - (256 << 10) / 512 + 4096 / 512,
                "MAY_UNMAP deallocated 256 KiB (the 4 KiB past EOF were added): " + before + " -> " + after);
    }

    @ParameterizedTest
    @MethodSource("engines")
    void detectZeroesUnmapTurnsAZeroWriteIntoAHole(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio).withDiscard(FileOptions.Discard.UNMAP)
                .withDetectZeroes(FileOptions.DetectZeroes.UNMAP);
        byte[] content = pattern(1 << 20, 6);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", content);
        long before = allocatedBlocks(img);
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("zero write", () -> {
                BlockNode n = t.layer.openFile("f", img, o);
                BlockTestSupport.Buf z = new BlockTestSupport.Buf(512 << 10);
                z.mem.clear();
                assertEquals(0, n.pwriteSync(256 << 10, 512 << 10, z.iov, 0));
                n.unref();
            });
        }
        assertArrayEquals(new byte[512 << 10], Arrays.copyOfRange(Files.readAllBytes(img), 256 << 10, 768 << 10));
        assertTrue(allocatedBlocks(img) <= before - (512 << 10) / 512, "the zero write became a hole");
    }

    /**
     * O_DIRECT: aligned requests go straight, unaligned ones through the
     * bounce buffer, and 64 concurrent unaligned writes into the same few
     * blocks all land (read-modify-write serialised; without it the
     * overlapping RMWs write back each other's stale bytes).
     */
    @ParameterizedTest
    @MethodSource("engines")
    void unalignedRequestsWithODirectGoThroughTheBounceBufferAndNoneIsLost(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio).withDirect(true);
        byte[] model = pattern(1 << 18, 7);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", model);
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("direct io", () -> {
                BlockNode n = t.layer.openFile("f", img, o);
                int al = ((FileDriver) n.driver()).directAlignment();
                assertTrue(al >= 512 && Integer.bitCount(al) == 1, "logical block size probed: " + al);
                // aligned, straight from (page-aligned) memory
                Memory page = new Memory(16384);
                long pa = (Memory.nativeValue(page) + 4095) & -4096L;
                byte[] d1 = pattern(8192, 8);
                page.write(pa - Memory.nativeValue(page), d1, 0, d1.length);
                IoVec v1 = new IoVec(1);
                v1.add(pa, 8192);
                assertEquals(0, n.pwriteSync(8192, 8192, v1, 0));
                System.arraycopy(d1, 0, model, 8192, 8192);
                assertEquals(0, ((FileDriver) n.driver()).bouncedRequests(), "aligned: straight from memory");
                // unaligned offset, length and memory
                byte[] d2 = pattern(1000, 9);
                Memory m2 = new Memory(1001);
                m2.write(1, d2, 0, 1000);
                IoVec v2 = new IoVec(1);
                v2.add(Memory.nativeValue(m2) + 1, 1000);
                assertEquals(0, n.pwriteSync(100, 1000, v2, 0));
                System.arraycopy(d2, 0, model, 100, 1000);
                assertEquals(1, ((FileDriver) n.driver()).bouncedRequests(), "unaligned: through the bounce buffer");
                // 64 concurrent 100-byte writes into blocks [64 KiB, 64 KiB + 6400)
                int[] rets = new int[64];
                AtomicInteger done = new AtomicInteger();
                Memory[] keep = new Memory[64];
                for (int i = 0; i < 64; i++) {
                    byte[] d = pattern(100, 100 + i);
                    keep[i] = new Memory(100);
                    keep[i].write(0, d, 0, 100);
                    IoVec v = new IoVec(1);
                    v.add(Memory.nativeValue(keep[i]), 100);
                    int k = i;
                    n.pwritev(65536 + 100L * i, 100, v, 0, ret -> {
                        rets[k] = ret;
                        done.incrementAndGet();
                    });
                    System.arraycopy(d, 0, model, 65536 + 100 * i, 100);
                }
                io.vblk.aio.AioWait.pollWhile(n.context(), () -> done.get() < 64);
                assertArrayEquals(new int[64], rets);
                // an unaligned read straddling everything written
                BlockTestSupport.Buf r = new BlockTestSupport.Buf(70000 - 3);
                assertEquals(0, n.preadSync(3, 70000 - 3, r.iov));
                assertArrayEquals(Arrays.copyOfRange(model, 3, 70000), r.bytes());
                assertEngine(n, aio);
                n.unref();
            });
        }
        assertArrayEquals(model, Files.readAllBytes(img));
    }

    @ParameterizedTest
    @MethodSource("engines")
    void kernelErrorsAndInjectedErrorsReachTheBackendsErrorPolicy(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 16]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            BlockBackend b = t.main("open", () -> {
                BlockNode f = t.layer.openFile("f", img, o);
                BlockNode dbg = t.layer.openBlkDebug("dbg", f);
                f.unref();
                BlockBackend be = t.layer.newBackend("blk0");
                be.attach(dbg);
                dbg.unref();
                be.setErrorPolicy(ErrorPolicy.REPORT, ErrorPolicy.ENOSPC);
                return be;
            });
            BlkDebugDriver dbg = (BlkDebugDriver) b.root().driver();
            BlockTestSupport.Buf buf = new BlockTestSupport.Buf(4096);
            // a real kernel error, from the driver's own syscall: past the file system's maximum file size
            int big = t.main("huge offset", () -> b.root().child(ChildRole.FILTERED).pwriteSync(1L << 60, 4096, buf.iov, 0));
            assertEquals(-Errno.EFBIG, big, "the kernel's errno comes back from the driver");
            for (int errno : new int[] {Errno.EIO, Errno.EAGAIN, Errno.ECANCELED}) {
                dbg.injectError(BlkDebugDriver.Op.READ, 0, 4096, errno, 0, true);
                CompletableFuture<Integer> f = new CompletableFuture<>();
                t.main("read", () -> b.preadv(0, 4096, buf.iov, 0, f::complete));
                assertEquals(-errno, t.watchdog().await("read", f), "rerror=report: " + Errno.name(errno));
            }
            java.util.concurrent.CountDownLatch stopped = new java.util.concurrent.CountDownLatch(1);
            b.setStopRequest(stopped::countDown);
            dbg.injectError(BlkDebugDriver.Op.WRITE, 0, 4096, Errno.ENOSPC, 0, true);
            CompletableFuture<Integer> w = new CompletableFuture<>();
            t.main("write", () -> b.pwritev(0, 4096, buf.iov, 0, w::complete));
            t.watchdog().await("werror=enospc stops the machine", stopped);
            assertEquals(IoStatus.NOSPACE, b.ioStatus());
            assertTrue(!w.isDone(), "the request is kept for the resume");
            t.main("cont", b::resume);
            assertEquals(0, t.watchdog().await("write after resume", w));
            t.main("close", () -> t.layer.removeBackend(b));
        }
    }

    /**
     * Context moves with requests in flight: each move drains the node (its
     * ring) first; completions arrive in the context that submitted them; the
     * ring of a context a node left is gone once no node uses it.
     */
    @ParameterizedTest
    @MethodSource("engines")
    void contextMovesUnderIoLoseNothingAndCompleteInTheSubmittingContext(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio);
        byte[] initial = pattern(1 << 20, 10);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", initial);
        byte[] model = initial.clone();
        try (BlockTestSupport t = new BlockTestSupport()) {
            IOThread io0 = t.iothread("io0");
            BlockBackend blk = t.main("open", () -> {
                BlockNode n = t.layer.openFile("disk", img, o);
                BlockBackend b = t.layer.newBackend("blk0");
                b.attach(n);
                n.unref();
                return b;
            });
            Workload w = new Workload(blk, model, 11, 16, 16384);
            @SuppressWarnings("unchecked")
            CompletableFuture<Void>[] running = new CompletableFuture[1];
            t.main("500 round trips", () -> {
                running[0] = w.runUntilStopped();
                for (int i = 0; i < 500; i++) {
                    blk.setAioContext(io0.context());
                    if (aio == FileOptions.Aio.IO_URING) {
                        assertNull(LuringState.of(t.loop.context()), "the main loop's ring went with the node");
                    }
                    blk.setAioContext(t.loop.context());
                }
                w.stop();
                blk.drain();
            });
            t.watchdog().await("workload end", running[0]);
            assertNull(w.firstProblem, w.firstProblem);
            assertEquals(0, w.wrongThread.get(), "every completion in the submitting context");
            assertEquals(w.issued.get(), w.completed.get(), "no completion lost");
            assertTrue(w.completed.get() > 500, "I/O kept flowing across the moves: " + w.completed.get());
            t.main("close", () -> t.layer.removeBackend(blk));
            assertNull(LuringState.of(t.loop.context()));
            assertNull(LuringState.of(io0.context()));
            assertTrue(t.loop.failures().isEmpty(), t.loop.failures().toString());
        }
        assertArrayEquals(model, Files.readAllBytes(img));
    }

    /** Closing a node waits for its requests; every callback runs once; the ring goes with the last node. */
    @ParameterizedTest
    @MethodSource("engines")
    void closeWithRequestsInFlightCompletesThemAll(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 20]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            int[] rets = t.main("submit then close", () -> {
                BlockNode n = t.layer.openFile("f", img, o);
                int[] r = new int[64];
                Arrays.fill(r, 1);
                Memory m = new Memory(64 * 4096L);
                m.setMemory(0, m.size(), (byte) 0x5A);
                for (int i = 0; i < 64; i++) {
                    IoVec v = new IoVec(1);
                    v.add(Memory.nativeValue(m) + 4096L * i, 4096);
                    int k = i;
                    BlockCompletion cb = ret -> r[k] = ret;
                    if (i % 2 == 0) {
                        n.pwritev(4096L * i, 4096, v, 0, cb);
                    } else {
                        n.preadv(4096L * i, 4096, v, 0, cb);
                    }
                }
                n.unref(); // the last reference: close waits for the 64
                if (aio == FileOptions.Aio.IO_URING) {
                    assertNull(LuringState.of(t.loop.context()), "the ring was released");
                }
                return r;
            });
            assertArrayEquals(new int[64], rets, "every request completed, with success, before close returned");
        }
        byte[] f = Files.readAllBytes(img);
        for (int i = 0; i < 64; i += 2) {
            assertEquals(0x5A, f[4096 * i] & 0xff);
        }
    }

    /** The last completion's callback drops the last reference: the node closes (and its ring goes) from inside a completion. */
    @ParameterizedTest
    @MethodSource("engines")
    void aCompletionCallbackMayCloseTheNode(FileOptions.Aio aio) throws Exception {
        FileOptions o = opts(aio);
        Path img = BlockTestSupport.tempImage(dir, "d.raw", pattern(65536, 12));
        try (BlockTestSupport t = new BlockTestSupport()) {
            int[] rets = t.main("close in callback", () -> {
                BlockNode n = t.layer.openFile("f", img, o);
                int[] r = {1, 1, 1, 1};
                AtomicInteger left = new AtomicInteger(4);
                Memory m = new Memory(4 * 4096L);
                for (int i = 0; i < 4; i++) {
                    IoVec v = new IoVec(1);
                    v.add(Memory.nativeValue(m) + 4096L * i, 4096);
                    int k = i;
                    n.preadv(4096L * i, 4096, v, 0, ret -> {
                        r[k] = ret;
                        if (left.decrementAndGet() == 0) {
                            n.unref();
                        }
                    });
                }
                io.vblk.aio.AioWait.pollWhile(t.loop.context(), () -> !n.isClosed());
                assertNull(LuringState.of(t.loop.context()), "no ring left in the context");
                return r;
            });
            assertArrayEquals(new int[4], rets);
            assertTrue(t.loop.failures().isEmpty(), t.loop.failures().toString());
        }
    }
}
