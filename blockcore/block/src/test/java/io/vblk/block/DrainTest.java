package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.AioContextLock;
import io.vblk.aio.IOThread;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("concurrency")
class DrainTest {

    @Test
    void requestsIssuedWhileDrainedCompleteOnlyAfterTheSectionEnds() {
        try (BlockTestSupport t = new BlockTestSupport()) {
            IOThread io0 = t.iothread("io0");
            AtomicInteger devDrained = new AtomicInteger();
            BlockBackend blk = t.main("open", () -> {
                BlockNode n = t.layer.openNull("n0", NullDriver.Options.of(1 << 20));
                BlockBackend b = t.layer.newBackend("blk0");
                b.attach(n);
                n.unref();
                b.setDevOps(new BlockDevOps() {
                    @Override
                    public void drainedBegin() {
                        devDrained.incrementAndGet();
                    }

                    @Override
                    public void drainedEnd() {
                        devDrained.decrementAndGet();
                    }
                });
                b.setAioContext(io0.context());
                return b;
            });
            DrainedSection section = t.main("drained begin", () -> {
                try (AioContextLock.Held h = io0.context().acquire()) {
                    return blk.drainedBegin();
                }
            });
            assertEquals(1, devDrained.get(), "the device was told to stop");
            assertTrue(blk.isQuiesced());
            int n = 100;
            AtomicInteger completions = new AtomicInteger();
            CountDownLatch all = new CountDownLatch(n);
            BlockTestSupport.Buf buf = new BlockTestSupport.Buf(4096);
            t.watchdog().await("submit while drained", io0.context().run("submit", () -> {
                for (int i = 0; i < n; i++) {
                    blk.preadv(i * 4096L, 4096, buf.iov, 0, ret -> {
                        assertEquals(0, ret);
                        completions.incrementAndGet();
                        all.countDown();
                    });
                }
            }));
            for (int i = 0; i < 3; i++) { // several full iterations of the IOThread: still nothing completes
                t.watchdog().await("io0 iteration", io0.context().run("tick", () -> assertFalse(io0.context().poll(false))));
            }
            assertEquals(0, completions.get(), "nothing completes to the device while drained");
            assertEquals(0, blk.inFlight(), "queued requests are not in flight");
            t.main("drained end", () -> {
                try (AioContextLock.Held h = io0.context().acquire()) {
                    section.close();
                }
            });
            t.watchdog().await("completions after drained end", all);
            assertEquals(n, completions.get(), "none lost");
            assertEquals(0, devDrained.get());
            assertTrue(t.loop.failures().isEmpty(), t.loop.failures().toString());
        }
    }

    @Test
    void nestedSectionsResumeOnlyAtTheOutermostEnd() {
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("nested", () -> {
                BlockNode n = t.layer.openNull("n0", NullDriver.Options.of(4096));
                BlockBackend b = t.layer.newBackend("blk0");
                b.attach(n);
                try (DrainedSection outer = n.drainedBegin()) {
                    try (DrainedSection inner = n.drainedBegin()) {
                        assertEquals(2, n.quiesceCounter());
                    }
                    assertTrue(b.isQuiesced(), "still drained after the inner end");
                    assertTrue(t.loop.context().isExternalDisabled());
                }
                assertFalse(b.isQuiesced());
                assertFalse(t.loop.context().isExternalDisabled());
            });
        }
    }

    /**
     * Ejecting the medium of a drained node ends the backend's quiesce with
     * the edge: the device is told the drain is over, and a new medium serves
     * requests instead of queueing them for a drained end that never comes.
     */
    @Test
    void ejectingADrainedMediumEndsTheBackendsQuiesce() {
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("eject while drained", () -> {
                BlockNode n = t.layer.openNull("n0", NullDriver.Options.of(4096));
                BlockBackend b = t.layer.newBackend("blk0");
                AtomicInteger devDrained = new AtomicInteger();
                b.setDevOps(new BlockDevOps() {
                    @Override
                    public void drainedBegin() {
                        devDrained.incrementAndGet();
                    }

                    @Override
                    public void drainedEnd() {
                        devDrained.decrementAndGet();
                    }
                });
                b.attach(n);
                try (DrainedSection s = n.drainedBegin()) {
                    assertTrue(b.isQuiesced());
                    b.detach();
                    assertFalse(b.isQuiesced(), "the ejected medium still quiesces the backend");
                    assertEquals(0, devDrained.get());
                }
                n.unref();
                BlockNode m = t.layer.openNull("n1", NullDriver.Options.of(4096));
                b.attach(m);
                m.unref();
                assertFalse(b.isQuiesced());
            });
        }
    }
}
