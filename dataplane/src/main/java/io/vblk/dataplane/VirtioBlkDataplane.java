package io.vblk.dataplane;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.AioWait;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockException;
import io.vblk.virtio.NotifierBus;
import io.vblk.virtio.blk.IoeventfdOps;
import io.vblk.virtio.blk.VirtioBlk;


import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A virtio-blk device's queues served on IOThreads: QEMU's
 * {@code VirtIOBlockDataPlane} (hw/block/dataplane/virtio-blk.c, and the
 * start/stop_ioeventfd of hw/block/virtio-blk.c since 8.2).
 *
 * <p><b>Start</b> (DRIVER_OK, resume): guest notifiers (irqfds) first; host
 * notifiers (ioeventfds) next; the backend moves to queue 0's IOThread;
 * {@code started} is published; every queue's host notifier is signalled
 * (the self-kick: whatever the ring holds already — e.g. a request a kick
 * before DRIVER_OK left there — is looked at, bug 015's fix d3f6f294ae, drained
 * or not); each queue's notifier is attached in its IOThread as an external,
 * pollable handler — unless the backend is drained, in which case drained-end
 * attaches it.
 *
 * <p><b>Stop</b> (reset, pause): each queue's handler is detached inside its
 * IOThread (a BH the main loop waits for); the host notifiers go back to
 * direct dispatch; {@code started} is cleared before draining; the backend is
 * drained; every pending batched notification is flushed while the irqfds
 * still reach the guest (seed 001); the backend moves back to the main loop
 * (left where it is if another user pins it); guest notifiers go last.
 *
 * <p><b>Drained sections</b> detach the handlers (no pops) and re-attach
 * them, kicking each queue once so kicks that arrived meanwhile are served
 * (QEMU 5bdbaebcce, "virtio: Re-enable notifications after drain").
 *
 * <p>Two {@link LegacyBehavior} switches take the start back to January 2024:
 * {@link LegacyBehavior#START_KICK_ONLY_WHEN_NOT_DRAINED} (bug 015) signals the
 * host notifiers only when the backend is not drained, and
 * {@link LegacyBehavior#ATTACH_WITHOUT_QUEUE_KICK} (the era before 5bdbaebcce)
 * attaches without the kick, so only a signalled notifier wakes the IOThread.
 *
 * <p>The transport is any {@link NotifierBus}: the virtio-pci function
 * (ioeventfds and MSI-X irqfds) or a vhost-user back-end (the front-end's
 * kick and call descriptors); the start and stop sequences are the same.
 *
 * <p>Everything here runs in the main loop.
 *
 * <p>What stays in the device (module virtio), and why: the
 * {@link IoeventfdOps} seam the device calls, the device's per-queue state
 * that this class only rebinds while idle (the request pool and the batched
 * guest notification, {@code VirtioBlk.setQueueContext}/{@code flushNotification}),
 * the device's cross-context request hand-off to the backend, and
 * {@code VirtioDevice.attachHostNotifier} (QEMU's
 * {@code virtio_queue_aio_attach_host_notifier}, in hw/virtio/virtio.c). This
 * module owns the decisions: which IOThread serves which queue
 * ({@link QueueMapping}), when queues start and stop, the notifier wiring
 * order, and the waits for idle around a switch.
 */
public final class VirtioBlkDataplane implements IoeventfdOps {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBlkDataplane.class);

    private final VirtioBlk dev;
    private final NotifierBus transport;
    private final BlockBackend blk;
    private volatile QueueMapping mapping;
    private volatile boolean enabled = true;
    private final MainLoop loop;
    private volatile boolean started;
    private volatile boolean stopping;
    private volatile boolean attached;
    private long starts;
    private long stops;

    public VirtioBlkDataplane(VirtioBlk dev, NotifierBus transport, QueueMapping mapping, MainLoop loop) {
        if (mapping.queues() != dev.numQueues()) {
            throw new IllegalArgumentException("the mapping covers " + mapping.queues() + " queues, the device has "
                    + dev.numQueues());
        }
        this.dev = dev;
        this.transport = transport;
        this.blk = dev.backend();
        this.mapping = mapping;
        this.loop = loop;
        dev.setIoeventfdOps(this);
    }

    public boolean isStarted() {
        return started;
    }

    /** QEMU's {@code ioeventfd_started}: what bug 016's legacy notification choice reads. */
    @Override
    public boolean ioeventfdStarted() {
        return started;
    }

    /**
     * Serves the queues from other IOThreads (or, with null, from the main
     * loop): stops if running, remaps, and starts again if the driver is
     * ready. Main loop only.
     */
    public void move(QueueMapping to, boolean driverReady) {
        checkMainLoop("move");
        if (to != null && to.queues() != dev.numQueues()) {
            throw new IllegalArgumentException("the mapping covers " + to.queues() + " queues, the device has "
                    + dev.numQueues());
        }
        stopIoeventfd();
        if (to == null) {
            enabled = false;
            blk.pin("served by the main loop (dataplane disabled)");
            return;
        }
        enabled = true;
        mapping = to;
        blk.pin(null);
        if (driverReady) {
            startIoeventfd();
        }
    }

    public boolean isEnabled() {
        return enabled;
    }

    public QueueMapping mapping() {
        return mapping;
    }

    public long starts() {
        return starts;
    }

    public long stops() {
        return stops;
    }

    private void checkMainLoop(String what) {
        if (!loop.context().inHomeThread()) {
            throw new IllegalStateException("dataplane " + what + " of " + dev.name() + " must run in the main loop");
        }
    }

    private AioContext ctx(int q) {
        return mapping.iothread(q).context();
    }

    // ------------------------------------------------------------------ start

    @Override
    public void startIoeventfd() {
        checkMainLoop("start");
        if (started || stopping || !enabled) {
            return;
        }
        int n = dev.numQueues();
        transport.setGuestNotifiers(true);
        for (int q = 0; q < n; q++) {
            transport.setHostNotifierEnabled(q, true);
        }
        AioContext backendCtx = ctx(0);
        try {
            blk.pin(null);
            blk.setAioContext(backendCtx);
            blk.pin("serving " + dev.name() + " from IOThread '" + backendCtx.name() + "'");
        } catch (BlockException e) {
            LOG.error("{}: cannot start the dataplane ({}); serving the queues from the main loop", dev.name(),
                    e.getMessage());
            for (int q = 0; q < n; q++) {
                transport.setHostNotifierEnabled(q, false);
                dev.kick(q); // what the ring holds already is looked at in main-loop mode
            }
            transport.setGuestNotifiers(false);
            return;
        }
        // Requests the main loop popped before the host notifiers took over finish first:
        // a queue is rebound only while nothing of it is in flight or in transit.
        AioWait.pollWhile(loop.context(), dev::busy);
        for (int q = 0; q < n; q++) {
            dev.setQueueContext(q, ctx(q), true);
        }
        started = true; // volatile store: the release that publishes the setup above
        starts++;
        boolean drained = blk.isQuiesced();
        // Bug 015's switch: before d3f6f294ae the self-kick was skipped with the attach inside a drained section.
        if (!drained || !loop.legacy().isOn(LegacyBehavior.START_KICK_ONLY_WHEN_NOT_DRAINED)) {
            for (int q = 0; q < n; q++) {
                dev.queue(q).hostNotifier().set(); // kick right away: what the ring holds already is looked at
            }
        }
        if (!drained) {
            attachAll();
        }
        LOG.debug("{}: dataplane started ({})", dev.name(), mapping);
    }

    /**
     * Attaches each queue's host notifier in its IOThread, then consumes any
     * kick that is pending and processes the queue once, holding the queue
     * context's lock: requests queued while no handler listened are served now,
     * and no stale signal is left for the IOThread to act on later, at a moment
     * nobody chose. That kick on attach is QEMU's 5bdbaebcce ("virtio:
     * Re-enable notifications after drain"); with
     * {@link LegacyBehavior#ATTACH_WITHOUT_QUEUE_KICK} the attach is all, as
     * before it: a pending signal is left to the IOThread, and without one the
     * queue waits for the guest's next kick.
     */
    private void attachAll() {
        boolean kick = !loop.legacy().isOn(LegacyBehavior.ATTACH_WITHOUT_QUEUE_KICK);
        for (int q = 0; q < dev.numQueues(); q++) {
            AioContext c = ctx(q);
            try (AioContextLock.Held h = c.inHomeThread() ? null : c.acquire()) {
                dev.attachHostNotifier(q, c);
                if (kick) {
                    dev.queue(q).hostNotifier().testAndClear();
                    dev.queueNotify(q);
                }
            }
        }
        attached = true;
    }

    // ------------------------------------------------------------------ stop

    @Override
    public void stopIoeventfd() {
        checkMainLoop("stop");
        if (!started || stopping) {
            return;
        }
        stopping = true;
        int n = dev.numQueues();
        // Bug 014's switch: the pre-75dcb4d790 order, host notifiers cleaned up after the drains, 'started' still set.
        boolean legacyOrder = loop.legacy().isOn(LegacyBehavior.HOST_NOTIFIERS_TORN_DOWN_AFTER_STOP_DRAIN);
        try {
            for (int q = 0; q < n; q++) {
                int queue = q;
                AioWait.runInHome(ctx(q), "detach vq" + q, () -> dev.detachHostNotifier(queue));
            }
            attached = false;
            if (!legacyOrder) {
                for (int q = 0; q < n; q++) {
                    transport.setHostNotifierEnabled(q, false);
                }
                started = false; // before draining: drained-end must not re-attach (bug 014)
            }
            AioContext backendCtx = blk.context();
            try (AioContextLock.Held h = backendCtx.inHomeThread() ? null : backendCtx.acquire()) {
                blk.drain();
                if (!loop.legacy().isOn(LegacyBehavior.DRAIN_WAITS_FOR_BLOCK_LAYER_ONLY)) {
                    // Every popped request answered, not only the backend idle (bug 013: whole requests).
                    AioWait.pollWhile(backendCtx, dev::busy);
                }
            }
            if (!loop.legacy().isOn(LegacyBehavior.NO_NOTIFY_FLUSH_ON_STOP)) {
                for (int q = 0; q < n; q++) {
                    AioContext c = ctx(q);
                    try (AioContextLock.Held h = c.inHomeThread() ? null : c.acquire()) {
                        dev.flushNotification(q); // the guest learns of every completion while irqfds work
                    }
                }
            }
            for (int q = 0; q < n; q++) {
                dev.setQueueContext(q, loop.context(), false);
            }
            blk.pin(null);
            try {
                blk.setAioContext(loop.context());
            } catch (BlockException e) {
                LOG.info("{}: backend stays in '{}': {}", dev.name(), blk.context().name(), e.getMessage());
            }
            if (legacyOrder) {
                for (int q = 0; q < n; q++) {
                    transport.setHostNotifierEnabled(q, false);
                }
                started = false;
            }
            transport.setGuestNotifiers(false);
            for (int q = 0; q < n; q++) {
                dev.kick(q); // kicks that came during the switch: served now, in main-loop mode
            }
            stops++;
            LOG.debug("{}: dataplane stopped", dev.name());
        } finally {
            stopping = false;
        }
    }

    // ------------------------------------------------------------------ drained sections

    /**
     * Whether a drain callback stays out of a stop under way. Since bug 014's
     * fix (75dcb4d790) the stop owns the notifiers while it drains; with the
     * switch on, the callbacks key on {@code started} alone, as before it.
     */
    private boolean stopOwnsNotifiers() {
        return stopping && !loop.legacy().isOn(LegacyBehavior.HOST_NOTIFIERS_TORN_DOWN_AFTER_STOP_DRAIN);
    }

    @Override
    public void drainedBegin() {
        if (!started || stopOwnsNotifiers() || !attached) {
            return;
        }
        for (int q = 0; q < dev.numQueues(); q++) {
            dev.detachHostNotifier(q);
        }
        attached = false;
    }

    @Override
    public boolean drainedEnd() {
        if (!started || stopOwnsNotifiers()) {
            return false;
        }
        if (!attached) {
            attachAll();
        }
        return true;
    }

    public String describe() {
        return "dataplane " + dev.name() + ": " + (started ? "started" : enabled ? "stopped" : "disabled (main loop)") + (stopping ? " (stopping)" : "")
                + (attached ? ", handlers attached" : ", handlers detached") + ", " + mapping + ", starts=" + starts
                + " stops=" + stops;
    }
}
