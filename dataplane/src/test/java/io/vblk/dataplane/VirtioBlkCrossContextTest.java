package io.vblk.dataplane;

import static io.vblk.virtio.blk.VirtioBlkAbi.SECTOR;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import io.vblk.aio.AioContext;
import io.vblk.aio.HangDetectedException;
import io.vblk.aio.LoopHold;
import io.vblk.block.BlkDebugDriver;
import io.vblk.dataplane.BlkMachine.Serving;
import io.vblk.dataplane.BlkMachine.Spec;
import io.vblk.testkit.BlkDriver.Layout;
import io.vblk.testkit.BlkDriver.Req;
import io.vblk.testkit.BlkDriver;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * A queue served in one IOThread (io1) with its backend in another (io0):
 * every request crosses to the backend's context and its completion crosses
 * back. The main loop's drain of the backend (a reset's dataplane stop)
 * waits while a request is between contexts (QEMU's AIO_WAIT_WHILE on the
 * device's in-transit count), so the hand-off that ends a crossing must wake
 * it (QEMU's aio_wait_kick). Staged step by step with blkdebug suspensions
 * and {@link LoopHold}s so that the last event the main loop is waiting for
 * is a completion arriving back in the queue's context while another request
 * of the device still waits, queued, in the drained backend.
 */
@Tag("concurrency")
class VirtioBlkCrossContextTest {

    @TempDir
    Path dir;
    BlkMachine m;

    @AfterEach
    void teardown() {
        if (m != null) {
            m.close();
        }
    }

    static void spin(String what, java.util.function.BooleanSupplier cond) {
        BlkMachine.spin(what, cond);
    }

    /** Holds {@code ctx} at the start of its next poll, woken for it, and waits until it is held. */
    private LoopHold hold(AioContext ctx) {
        LoopHold h = LoopHold.atNextPoll(ctx);
        ctx.bhScheduleOneshot("wake " + ctx.name(), () -> { });
        h.awaitHeld(m.watchdog(), ctx.name() + " held");
        return h;
    }

    /**
     * The guest resets the device from a vCPU thread, which blocks until the
     * reset is done; {@code done} gets the status read back.
     */
    private static Thread resetFromVcpu(BlkDriver g, CompletableFuture<Integer> done) {
        Thread vcpu = new Thread(() -> {
            try {
                g.pci.setStatus(0);
                done.complete(g.pci.status());
            } catch (Throwable t) {
                done.completeExceptionally(t);
            }
        }, "vcpu1");
        vcpu.start();
        return vcpu;
    }

    /**
     * A request the drained backend held is resubmitted when the stop's drain
     * ends, and completes after it: its completion is handed back to the
     * queue's context, and the stop must wait for that crossing before it
     * moves the queue to the main loop (moving deletes the hand-off, so the
     * completion would be lost and the reset wait for it forever). io1 is held
     * while the completion is on its way, so the stop is caught waiting.
     */
    @Test
    void aCompletionOnItsWayToTheQueueKeepsTheQueueWhereItIs() throws Exception {
        m = new BlkMachine(new Spec().serving(Serving.SPLIT).queues(1).blkdebug(true), dir);
        BlkDriver g = m.newDriver();
        g.initLinux(BlkDriver.LINUX_FEATURES);
        spin("the dataplane started", m.dataplane::isStarted);
        AioContext io0 = m.io[0].context();
        AioContext io1 = m.io[1].context();
        AioContext main = m.loop.context();
        Random r = new Random(2);
        BlkDebugDriver.Suspension sb = m.debug.suspend("B", BlkDebugDriver.Op.READ, 200 * SECTOR, 208L * SECTOR);

        // B: popped in io1, in transit to io0, which is held
        LoopHold h0 = hold(io0);
        Req b = g.read(0, 1, 200, 8 * SECTOR, Layout.SIMPLE, r);
        g.submit(b);
        spin("B in transit to io0", () -> m.dev.describe().contains("requests in flight 1, in transit 1"));

        CompletableFuture<Integer> reset = new CompletableFuture<>();
        Thread vcpu = resetFromVcpu(g, reset);
        spin("the stop detached the queue and drains the backend", m.blk::isQuiesced);

        LoopHold h1 = hold(io1);
        try {
            h0.release(); // B reaches the drained backend (queued); the drain ends and resubmits it; blkdebug holds it
            m.watchdog().await("B resubmitted and held by blkdebug", sb.reached());
            sb.resume(); // B completes in io0 and is handed to io1, held
            spin("B's completion in transit to io1", () -> m.blk.inFlight() == 0
                    && m.dev.describe().contains("in transit 1"));
            spin("the stop waits, asleep", () -> main.phase() == AioContext.Phase.SLEEPING
                    && main.pendingBottomHalves(4).isEmpty());
            assertSame(io1, m.dev.queueContext(0), "the queue was moved under a completion on its way to it");
        } finally {
            h1.release();
        }
        int status;
        try {
            status = m.loop.watchdog(Duration.ofSeconds(10)).await("the reset to complete", reset);
        } catch (HangDetectedException e) {
            m.loop.run("nudge the main loop so the machine can shut down", () -> { });
            throw e;
        }
        vcpu.join();
        assertEquals(0, status);
        assertEquals(0, m.dev.requestsInFlight());
        assertTrue(m.loop.failures().isEmpty(), () -> m.loop.failures().toString());
        g.initLinux(BlkDriver.LINUX_FEATURES);
        Req c = g.read(0, 2, 200, 8 * SECTOR, Layout.INDIRECT, r);
        g.run(c);
        assertArrayEquals(Arrays.copyOfRange(m.initialContent, 200 * SECTOR, 208 * SECTOR), c.in());
    }

    @Test
    void aResetDrainingTheBackendWakesWhenACompletionCrossesBack() throws Exception {
        m = new BlkMachine(new Spec().serving(Serving.SPLIT).queues(1).blkdebug(true), dir);
        BlkDriver g = m.newDriver();
        g.initLinux(BlkDriver.LINUX_FEATURES);
        spin("the dataplane started", m.dataplane::isStarted);
        AioContext io0 = m.io[0].context();
        AioContext io1 = m.io[1].context();
        assertSame(io1, m.dev.queueContext(0), "the queue is served in io1");
        assertSame(io0, m.blk.context(), "the backend lives in io0");
        Random r = new Random(1);

        // A: held in the backend by a suspension
        BlkDebugDriver.Suspension sa = m.debug.suspend("A", BlkDebugDriver.Op.READ, 100 * SECTOR, 108L * SECTOR);
        Req a = g.read(0, 0, 100, 8 * SECTOR, Layout.SIMPLE, r);
        g.submit(a);
        m.watchdog().await("A held by blkdebug", sa.reached());

        // B: popped in io1 and handed to io0, which is held before its next poll, so B stays in transit
        LoopHold h0 = hold(io0);
        Req b = g.read(0, 1, 200, 8 * SECTOR, Layout.SIMPLE, r);
        g.submit(b);
        spin("B popped and in transit to io0", () -> m.dev.describe().contains("requests in flight 2, in transit 1"));

        // the guest resets: the main loop stops the dataplane and drains the backend (held io0 has its lock free)
        CompletableFuture<Integer> reset = new CompletableFuture<>();
        Thread vcpu = resetFromVcpu(g, reset);
        spin("the backend is drained", m.blk::isQuiesced);

        // io1 held too; then io0 runs: B reaches the drained backend and is queued, A is resumed and completes,
        // and A's completion is handed back to io1
        LoopHold h1 = hold(io1);
        sa.resume();
        h0.release();
        spin("A completed in the backend and is in transit back to io1",
                () -> m.blk.inFlight() == 0 && m.dev.describe().contains("in transit 1"));
        AioContext main = m.loop.context();
        spin("the main loop waits, asleep", () -> main.phase() == AioContext.Phase.SLEEPING
                && main.pendingBottomHalves(4).isEmpty());

        // io1 finishes A's crossing: the only thing the main loop's drain still waits for
        h1.release();
        int status;
        try {
            status = m.loop.watchdog(Duration.ofSeconds(10)).await("the reset to complete", reset);
        } catch (HangDetectedException e) {
            m.loop.run("nudge the main loop so the machine can shut down", () -> { });
            throw e;
        }
        vcpu.join();
        assertEquals(0, status);
        assertEquals(0, m.dev.requestsInFlight());
        assertEquals(BlkDriver.STATUS_UNSET, a.status(), "A's completion was dropped by the reset");
        assertEquals(BlkDriver.STATUS_UNSET, b.status(), "B's completion was dropped by the reset");

        // the device works again, across contexts
        g.initLinux(BlkDriver.LINUX_FEATURES);
        spin("the dataplane started", m.dataplane::isStarted);
        Req c = g.read(0, 2, 100, 8 * SECTOR, Layout.SCATTERED, r);
        g.run(c);
        assertEquals(VirtioBlkAbi.S_OK, c.status());
        assertArrayEquals(Arrays.copyOfRange(m.initialContent, 100 * SECTOR, 108 * SECTOR), c.in());
        assertTrue(m.loop.failures().isEmpty(), () -> m.loop.failures().toString());
    }
}
