package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The store-buffer model bugs 006 and 007 are replayed under: a thread reads
 * its own buffered store at once, other threads read the old value until the
 * storing thread passes a barrier, and a read that missed a buffered store is
 * recorded.
 */
@Tag("concurrency")
class VisibilityModelTest {

    private static int loadElsewhere(VisibilityModel m, VisibilityModel.Field f) throws Exception {
        CompletableFuture<Integer> r = new CompletableFuture<>();
        Thread t = new Thread(() -> r.complete(m.load(f, "test")), "other");
        t.start();
        t.join(30_000);
        return r.get(30, TimeUnit.SECONDS);
    }

    @Test
    void aBufferedStoreIsInvisibleToOtherThreadsUntilTheStorerPassesABarrier() throws Exception {
        VisibilityModel m = new VisibilityModel();
        VisibilityModel.Field f = m.field("notify_me", 0);
        m.add(f, 2);
        assertEquals(2, m.load(f, "test"), "store forwarding: the storing thread reads its own store");
        assertEquals(0, loadElsewhere(m, f), "another thread reads the old value");
        assertEquals(0, f.visible());
        assertEquals(1, m.staleLoads().size());
        assertTrue(m.staleLoads().get(0).startsWith("'other' read notify_me=0 in test while '"
                + Thread.currentThread().getName() + "' still had [notify_me += 2] in its store buffer"),
                m.staleLoads().toString());
        assertTrue(m.describe().contains("buffers [notify_me += 2]"), m.describe());

        m.fence("smp_mb");
        assertEquals(2, f.visible());
        assertEquals(2, loadElsewhere(m, f), "drained by the barrier");
        assertEquals(1, m.staleLoads().size(), "a read after the drain is not stale");

        m.set(f, 7);
        m.add(f, -2);
        assertEquals(5, m.load(f, "test"));
        m.syscall();
        assertEquals(5, loadElsewhere(m, f));
    }

    /**
     * Bug 019's guest-RAM store: it is written to that memory only when the
     * storing thread's buffer drains, in order with its other stores.
     */
    @Test
    void aStoreToMemoryOutsideTheModelIsWrittenWhenTheBufferDrains() {
        VisibilityModel m = new VisibilityModel();
        VisibilityModel.Field f = m.field("notify_me", 0);
        java.util.concurrent.atomic.AtomicInteger ram = new java.util.concurrent.atomic.AtomicInteger();
        m.storeLater("vq1 avail_event = 1", () -> ram.set(1));
        m.add(f, 2);
        assertEquals(0, ram.get(), "not written while buffered");
        assertEquals("[vq1 avail_event = 1, notify_me += 2]", m.buffered(Thread.currentThread()));
        assertTrue(m.describe().contains("buffers [vq1 avail_event = 1, notify_me += 2]"), m.describe());
        m.fence("smp_mb");
        assertEquals(1, ram.get(), "written by the barrier");
        assertEquals(2, f.visible());
        assertEquals("[]", m.buffered(Thread.currentThread()));
    }

    /**
     * notify_me is read in the home thread, between two polls: read from the
     * test thread it is 2 whenever the idle main loop happens to sleep in its
     * blocking poll (the soak caught that under CPU hogs), 0 otherwise.
     */
    @Test
    void aMainLoopWithoutTheModelKeepsTheJvmsOrdering() {
        try (MainLoop loop = new MainLoop()) {
            assertEquals(null, loop.visibilityModel());
            assertEquals(0, loop.watchdog(Loops.OK).call("notify_me in the home thread",
                    () -> loop.context().notifyMe()));
        }
    }
}
