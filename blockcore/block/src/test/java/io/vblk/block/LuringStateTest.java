package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.sun.jna.Memory;

import io.vblk.aio.AioWait;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The ring's own properties: batching (plug/unplug), more requests than the CQ holds, the fallback to threads. */
class LuringStateTest {
    @TempDir
    Path dir;

    @BeforeEach
    void needsIoUring() {
        String why = LuringState.unavailableReason();
        assumeTrue(why == null, "io_uring is refused on this host: " + why);
    }

    /** 32 requests submitted in one loop iteration reach the kernel with one io_uring_enter. */
    @Test
    void oneIterationsRequestsGoToTheKernelInOneEnter() throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[1 << 20]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("batch", () -> {
                BlockNode n = t.layer.openFile("f", img, FileOptions.defaults());
                Memory m = new Memory(32 * 4096L);
                AtomicInteger done = new AtomicInteger();
                for (int i = 0; i < 32; i++) {
                    IoVec v = new IoVec(1);
                    v.add(Memory.nativeValue(m) + 4096L * i, 4096);
                    n.preadv(4096L * i, 4096, v, 0, ret -> done.incrementAndGet());
                }
                LuringState s = LuringState.of(n.context());
                assertNotNull(s, "the context's ring was made for the first request");
                assertEquals(0, s.enters(), "nothing entered the kernel while the iteration was queueing");
                AioWait.pollWhile(n.context(), () -> done.get() < 32);
                assertEquals(1, s.enters(), "one io_uring_enter for the batch");
                assertEquals(32, s.submitted());
                n.unref();
            });
        }
    }

    /** 1000 requests at once: more than the CQ holds (256); the rest wait for slots and none is lost. */
    @Test
    void moreRequestsThanTheCompletionQueueHoldsAllComplete() throws Exception {
        byte[] content = new byte[1000 * 512];
        for (int i = 0; i < content.length; i++) {
            content[i] = (byte) (i / 512);
        }
        Path img = BlockTestSupport.tempImage(dir, "d.raw", content);
        try (BlockTestSupport t = new BlockTestSupport()) {
            byte[] back = t.main("flood", () -> {
                BlockNode n = t.layer.openFile("f", img, FileOptions.defaults());
                Memory m = new Memory(content.length);
                int[] rets = new int[1000];
                Arrays.fill(rets, 1);
                AtomicInteger done = new AtomicInteger();
                for (int i = 0; i < 1000; i++) {
                    IoVec v = new IoVec(1);
                    v.add(Memory.nativeValue(m) + 512L * i, 512);
                    int k = i;
                    n.preadv(512L * i, 512, v, 0, ret -> {
                        rets[k] = ret;
                        done.incrementAndGet();
                    });
                }
                AioWait.pollWhile(n.context(), () -> done.get() < 1000);
                assertArrayEquals(new int[1000], rets);
                LuringState s = LuringState.of(n.context());
                assertEquals(1000, s.submitted());
                assertTrue(s.enters() >= 1000 / LuringState.ENTRIES, "the SQ was flushed when full: " + s.enters());
                assertEquals(0, s.inFlight());
                n.unref();
                byte[] b = new byte[content.length];
                m.read(0, b, 0, b.length);
                return b;
            });
            assertArrayEquals(content, back);
        }
    }

    /** Where io_uring_setup is refused (ENOSYS, EPERM), aio=io_uring falls back to the thread pool, logged once. */
    @Test
    void aRefusedIoUringFallsBackToThreadsLoggedOnce() throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[65536]);
        try (AutoCloseable refused = LuringState.refuseForTest("io_uring_setup failed: EPERM");
                BlockTestSupport t = new BlockTestSupport()) {
            t.main("fallback", () -> {
                assertFalse(LuringState.fallbackLogged());
                BlockNode n = t.layer.openFile("f", img, FileOptions.defaults());
                BlockTestSupport.Buf b = new BlockTestSupport.Buf(4096);
                assertEquals(0, n.preadSync(0, 4096, b.iov));
                assertEquals(FileOptions.Aio.THREADS, ((FileDriver) n.driver()).aioInUse());
                assertNull(LuringState.of(n.context()), "no ring");
                assertTrue(LuringState.fallbackLogged());
                n.unref();
            });
        }
    }

    private static int ringFds() throws java.io.IOException {
        int n = 0;
        try (java.util.stream.Stream<Path> fds = java.nio.file.Files.list(Path.of("/proc/self/fd"))) {
            for (Path fd : (Iterable<Path>) fds::iterator) {
                try {
                    String target = java.nio.file.Files.readSymbolicLink(fd).toString();
                    if (target.equals("anon_inode:[io_uring]") || target.equals("anon_inode:[eventfd]")) {
                        n++;
                    }
                } catch (java.io.IOException gone) {
                    // the directory's own fd, closed by now
                }
            }
        }
        return n;
    }

    /**
     * A machine that closes its event loops without closing its block graph:
     * the context's free hook takes the ring down with the context (QEMU's
     * aio_ctx_finalize), and the node closed afterwards does not touch it.
     */
    @Test
    void aContextFreedUnderAnOpenNodeTakesItsRingWithIt() throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[65536]);
        int before = ringFds();
        BlockTestSupport t = new BlockTestSupport();
        BlockNode n = t.main("open and read", () -> {
            BlockNode f = t.layer.openFile("f", img, FileOptions.defaults());
            BlockTestSupport.Buf b = new BlockTestSupport.Buf(4096);
            assertEquals(0, f.preadSync(0, 4096, b.iov));
            assertNotNull(LuringState.of(f.context()));
            return f;
        });
        io.vblk.aio.AioContext ctx = n.context();
        t.close(); // the loops and their contexts go; the node is still open
        assertNull(LuringState.of(ctx), "the ring went with its context");
        assertEquals(before, ringFds(), "no eventfd or io_uring descriptor left by the ring");
        n.unref(); // closing the node later releases nothing twice
        assertEquals(before, ringFds());
    }
}
