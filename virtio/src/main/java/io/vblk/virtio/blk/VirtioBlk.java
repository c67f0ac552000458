package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioWait;
import io.vblk.aio.LegacyBehavior;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockDevOps;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.HostMemory;
import io.vblk.virtio.VirtQueue;
import io.vblk.virtio.VirtioDevice;
import io.vblk.virtio.VirtioFeatures;

import static io.vblk.virtio.blk.VirtioBlkAbi.*;

import java.nio.charset.StandardCharsets;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The virtio-blk device: QEMU's {@code VirtIOBlock} (hw/block/virtio-blk.c).
 *
 * <p>Parse, then execute: {@link VirtioBlkRequestParser} turns each popped
 * chain into one outcome, written into the pooled {@link VirtioBlkReq} —
 * submit (IN, OUT, FLUSH, DISCARD, WRITE_ZEROES to the {@link BlockBackend}),
 * answer now (GET_ID, an unsupported type, a validation failure: the status
 * is written and the disk never touched), or guest error (no header, no
 * status byte: the device needs reset) — and this class executes it.
 * {@link BlockErrorStatus} maps the backend's completion to the status byte.
 * The status byte
 * is written last; completions are pushed to the used ring at once and the
 * guest is interrupted once per batch and queue.
 *
 * <p>Queues are served in their own context — the main loop without a
 * dataplane, an IOThread with one — which may differ from the backend's: a
 * request then crosses to the backend's context and its completion crosses
 * back, both through allocation-free hand-off queues.
 *
 * <p>Reset advances an epoch: a request still in flight finishes, but its
 * completion is discarded rather than written into the reset guest's rings.
 */
public final class VirtioBlk extends VirtioDevice implements BlockDevOps {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBlk.class);
    private static final boolean TRACE = LOG.isTraceEnabled();


    private final BlockBackend blk;
    private final VirtioBlkConfig conf;
    /** The GET_ID answer: the serial, zero-padded to VIRTIO_BLK_ID_BYTES. */
    private final byte[] paddedSerial = new byte[SERIAL_BYTES];
    private final VirtioBlkRequestParser parser;
    private final QueueState[] queues;
    private volatile long capacitySectors;
    private final boolean readOnly;
    private volatile int epoch;
    /** Requests popped and not yet finished, on any context. */
    private final AtomicInteger inFlight = new AtomicInteger();
    /** Requests between contexts (in a hand-off queue); a drain must wait for them. */
    private final AtomicInteger inTransit = new AtomicInteger();
    /** Batches notified through the main-loop path off the home thread (bug 016's invariant). */
    private final AtomicLong offThreadNotifications = new AtomicLong();
    /** Completions that reached the device after {@link #unrealize()} (7bfde688fb's invariant). */
    private final AtomicLong completionsAfterUnrealize = new AtomicLong();
    private volatile boolean unrealized;
    private volatile HandoffQueue toBackend;
    private volatile IoeventfdOps ioeventfd;
    private volatile boolean drained;
    private volatile boolean writeback = true;
    private volatile RequestObserver observer = RequestObserver.NONE;

    public VirtioBlk(String name, BlockBackend blk, VirtioBlkConfig conf, AioContext home, GuestMemory mem) {
        super(name, ID_BLOCK, features(conf, blk), CONFIG_SIZE, home, mem);
        this.blk = blk;
        this.conf = conf;
        this.readOnly = blk.isReadOnly();
        this.capacitySectors = blk.length() / SECTOR;
        String s = conf.serial() != null ? conf.serial() : name;
        byte[] id = s.substring(0, Math.min(SERIAL_BYTES, s.length())).getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(id, 0, paddedSerial, 0, Math.min(id.length, SERIAL_BYTES));
        this.parser = new VirtioBlkRequestParser(capacitySectors, readOnly);
        this.queues = new QueueState[conf.numQueues()];
        for (int i = 0; i < queues.length; i++) {
            queues[i] = new QueueState(this, addQueue(conf.queueSize()), home);
        }
        setConfigU64(CFG_CAPACITY, capacitySectors);
        setConfigU32(CFG_SIZE_MAX, SIZE_MAX);
        setConfigU32(CFG_SEG_MAX, conf.queueSize() - 2);   // seg_max: two descriptors are header and status
        setConfigU32(CFG_BLK_SIZE, SECTOR);
        setConfigU8(CFG_PHYSICAL_BLOCK_EXP, 0);
        setConfigU8(CFG_ALIGNMENT_OFFSET, 0);
        setConfigU16(CFG_MIN_IO_SIZE, 1);   // min_io_size (in blk_size units)
        setConfigU32(CFG_OPT_IO_SIZE, 0);
        setConfigU8(CFG_WRITEBACK, 1);
        setConfigU16(CFG_NUM_QUEUES, conf.numQueues());
        setConfigU32(CFG_MAX_DISCARD_SECTORS, MAX_DISCARD_SECTORS);
        setConfigU32(CFG_MAX_DISCARD_SEG, 1);
        setConfigU32(CFG_DISCARD_SECTOR_ALIGNMENT, 1);
        setConfigU32(CFG_MAX_WRITE_ZEROES_SECTORS, MAX_DISCARD_SECTORS);
        setConfigU32(CFG_MAX_WRITE_ZEROES_SEG, 1);
        setConfigU8(CFG_WRITE_ZEROES_MAY_UNMAP, 1);
        blk.setDevOps(this);
    }

    private static long features(VirtioBlkConfig conf, BlockBackend blk) {
        long f = VirtioFeatures.RING_FEATURES | F_SIZE_MAX | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | F_TOPOLOGY
                | F_DISCARD | F_WRITE_ZEROES;
        if (conf.writeCacheConfigurable()) {
            f |= F_CONFIG_WCE;
        }
        if (conf.numQueues() > 1) {
            f |= F_MQ;
        }
        if (blk.isReadOnly()) {
            f |= F_RO;
        }
        return f;
    }

    public BlockBackend backend() {
        return blk;
    }

    public VirtioBlkConfig config() {
        return conf;
    }

    public long capacitySectors() {
        return capacitySectors;
    }

    /**
     * The disk behind the device now has {@code sectors} sectors (QEMU's
     * {@code virtio_blk_resize}): requests are checked against it and the
     * config space's capacity says it. Telling the driver is the caller's
     * ({@link #notifyConfigChange()} in-process; a vhost-user back-end sends
     * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG). Refused past the backend's length.
     */
    public void resize(long sectors) {
        if (sectors < 0 || sectors > blk.length() / SECTOR) {
            throw new IllegalArgumentException(name() + ": capacity of " + sectors + " sectors, but the backend has "
                    + blk.length() / SECTOR);
        }
        capacitySectors = sectors;
        parser.setCapacity(sectors);
        setConfigU64(CFG_CAPACITY, sectors);
    }

    /** Requests popped from the guest and not yet answered. */
    public int requestsInFlight() {
        return inFlight.get();
    }

    /**
     * Whether a request the device popped is still unanswered, other than those
     * a stopping error keeps in the backend for resume. A backend drain is not
     * enough: a request handed over while the backend was drained is queued
     * there and resubmitted at drained-end.
     */
    public boolean busy() {
        return inFlight.get() > blk.stoppedRequests();
    }

    /** Sees requests at their trace points (QEMU's virtio_blk_* trace events); for diagnostics and staged tests. */
    public void setObserver(RequestObserver o) {
        observer = o == null ? RequestObserver.NONE : o;
    }

    /** Plugs a dataplane in; without one the queues are served in the home context. */
    public void setIoeventfdOps(IoeventfdOps ops) {
        ioeventfd = ops;
    }

    /** The context serving queue {@code q}. */
    public AioContext queueContext(int q) {
        return queues[q].ctx;
    }

    /**
     * Moves queue {@code q} to {@code ctx}; {@code irqfd} says its interrupts go
     * through the guest notifiers (dataplane) rather than the home context. The
     * dataplane does this while the queue is detached and idle ({@link #busy()}
     * false): completions on their way to the old context travel through a
     * hand-off that rebinding deletes.
     */
    public void setQueueContext(int q, AioContext ctx, boolean irqfd) {
        queues[q].bind(ctx, irqfd);
    }

    /** Runs queue {@code q}'s pending batched notification now: the dataplane's final flush on stop (seed 001). */
    public void flushNotification(int q) {
        queues[q].flushNotify();
    }

    // ------------------------------------------------------------------ lifecycle hooks

    @Override
    protected void onDriverOk() {
        IoeventfdOps ops = ioeventfd;
        if (ops != null) {
            ops.startIoeventfd();
        }
    }

    @Override
    protected void onConfigWrite(int offset, int size, long value) {
        if (offset == CFG_WRITEBACK && size == 1 && hasFeature(F_CONFIG_WCE)) {
            writeback = value != 0;
            setConfigU8(CFG_WRITEBACK, writeback ? 1 : 0);
            LOG.debug("{}: write cache {}", name(), writeback ? "writeback" : "writethrough");
        }
    }

    /**
     * Reset, in the home context: advance the epoch so completions of requests
     * popped before the reset are dropped, stop the dataplane (whose drain
     * finishes those requests), give up requests kept by a stopping error,
     * drain the backend, and wait until every popped request finished.
     */
    @Override
    protected void quiesceForReset() {
        epoch++; // first: the dataplane stop below drains, and what it completes must not reach the rings
        IoeventfdOps ops = ioeventfd;
        if (ops != null) {
            ops.stopIoeventfd();
        }
        blk.discardStopped();
        blk.drain();
        AioWait.pollWhile(homeContext(), () -> inFlight.get() > 0);
    }

    /**
     * The device half of {@code device_del}: QEMU's
     * {@code virtio_blk_device_unrealize}. A driver that never reset the
     * device (Windows does not) may still have requests in the backend, so
     * the backend is drained first (7bfde688fb, "virtio-blk: Add blk_drain()
     * to virtio_blk_device_unrealize()"): each completes while the queues
     * and the interrupt path still exist. Then the queues are torn down: the
     * device pops, pushes and notifies nothing any more. Main loop, after any
     * dataplane was stopped. {@link LegacyBehavior#NO_DRAIN_IN_UNREALIZE}
     * drops exactly that drain; a completion that then arrives finds the
     * device unrealized (QEMU: {@code virtio_notify} on a freed
     * {@code VirtIOBlock}), which {@link #finish} counts and refuses.
     */
    public void unrealize() {
        if (!homeContext().inHomeThread()) {
            throw new IllegalStateException(name() + ": unrealize must run in the main loop");
        }
        if (!homeContext().legacy().isOn(LegacyBehavior.NO_DRAIN_IN_UNREALIZE)) {
            blk.drain();
        }
        unrealized = true;
        LOG.debug("{}: unrealized ({} request(s) still in flight)", name(), inFlight.get());
    }

    public boolean isUnrealized() {
        return unrealized;
    }

    /**
     * How many completions reached the device after it was unrealized: each
     * would have pushed to freed rings and notified a freed device in QEMU
     * before 7bfde688fb. Counted whatever the legacy switch says.
     */
    public long completionsAfterUnrealize() {
        return completionsAfterUnrealize.get();
    }

    @Override
    protected void reset() {
        writeback = true;
        setConfigU8(CFG_WRITEBACK, 1);
    }

    // ------------------------------------------------------------------ BlockDevOps (drained sections)

    @Override
    public void drainedBegin() {
        drained = true;
        observer.drainedBegin();
        IoeventfdOps ops = ioeventfd;
        if (ops != null) {
            ops.drainedBegin();
        }
    }

    @Override
    public void drainedEnd() {
        drained = false;
        IoeventfdOps ops = ioeventfd;
        if (ops == null || !ops.drainedEnd()) {
            for (int q = 0; q < queues.length; q++) {
                kick(q); // what the guest queued meanwhile: kicks that came while drained popped nothing
            }
        }
    }

    /**
     * QEMU's {@code .drained_poll}: a drain of the backend also waits for
     * requests between contexts, so it ends only when each request was pushed
     * and notified, not when the block layer is idle (bug 013, 8f5e9a8ee1, the
     * vhost-user-blk export's in-flight counter). The legacy switch reverts to
     * the block layer's requests only.
     */
    @Override
    public boolean drainedPoll() {
        if (homeContext().legacy().isOn(LegacyBehavior.DRAIN_WAITS_FOR_BLOCK_LAYER_ONLY)) {
            return false;
        }
        return inTransit.get() > 0;
    }

    // ------------------------------------------------------------------ the request loop

    /**
     * QEMU's {@code virtio_blk_handle_vq}: notifications off (unless a polling
     * loop already turned them off), pop everything, back on, and re-check so
     * a request that raced with re-enabling is not left behind.
     */
    @Override
    protected void handleQueue(VirtQueue vq) {
        if (drained || unrealized) {
            return; // no pops while drained: drained end processes the queue
        }
        QueueState qs = queues[vq.index()];
        AioContext c = qs.ctx;
        if (!c.inHomeThread() && !c.lock().isHeldByCurrentThread()) {
            return; // another context serves this queue (a dataplane switching): whoever serves it next processes it
        }
        boolean suppress = vq.isNotificationEnabled();
        do {
            if (suppress) {
                vq.setNotification(false);
            }
            for (;;) {
                VirtioBlkReq r = qs.take();
                if (!vq.pop(r.elem)) {
                    qs.give(r);
                    break;
                }
                process(r);
                if (vq.isBroken() || drained) {
                    break;
                }
            }
            if (suppress) {
                vq.setNotification(true);
            }
        } while (suppress && !drained && !vq.isBroken() && !vq.isEmpty());
        observer.kicksEnabled(vq.index());
    }

    /** Parse, then execute the outcome: QEMU's {@code virtio_blk_handle_request}. */
    private void process(VirtioBlkReq r) {
        r.epoch = epoch;
        inFlight.incrementAndGet();
        switch (parser.parse(r, negotiatedFeatures(), writeback)) {
            case GUEST_ERROR:
                malformed(r, r.error);
                return;
            case ANSWER:
                trace(r);
                if (r.type == T_GET_ID) {
                    r.elem.copyToWritable(0, paddedSerial, 0, r.inLen - 1);
                }
                finish(r);
                return;
            default:
                trace(r);
                submit(r);
        }
    }

    private void trace(VirtioBlkReq r) {
        if (TRACE) {
            LOG.trace("virtio_blk_handle_request dev={} vq={} type={} sector={}", name(), r.queue.index, r.type, r.sector);
        }
    }

    private void malformed(VirtioBlkReq r, String why) {
        QueueState qs = r.queue;
        qs.vq.detach(r.elem);
        qs.give(r);
        inFlight.decrementAndGet();
        virtioError("virtio-blk vq" + qs.index + ": " + why);
    }

    // ------------------------------------------------------------------ backend and completion

    private void submit(VirtioBlkReq r) {
        observer.submitted(r.queue.index, r.type, r.sector);
        AioContext bc = blk.context();
        if (bc == r.queue.ctx || bc.inHomeThread()) {
            toBackend(r);
            return;
        }
        HandoffQueue h = toBackend; // one volatile read: the queue names its own context
        if (h == null || h.ctx != bc) {
            h = bindBackendHandoff(bc);
        }
        inTransit.incrementAndGet();
        h.push(r);
    }

    private synchronized HandoffQueue bindBackendHandoff(AioContext bc) {
        HandoffQueue h = toBackend;
        if (h == null || h.ctx != bc) {
            h = new HandoffQueue(bc, name() + "-to-backend", r -> {
                toBackend(r); // counted by the backend now, before it stops counting as in transit
                transitDone();
            });
            toBackend = h;
        }
        return h;
    }

    /** Issues the request to the backend; runs in the backend's context. */
    private void toBackend(VirtioBlkReq r) {
        switch (r.type) {
            case T_IN:
                blk.preadv(r.offset, r.bytes, r.qiov, 0, r);
                break;
            case T_OUT:
                blk.pwritev(r.offset, r.bytes, r.qiov, r.flags, r);
                break;
            case T_FLUSH:
                blk.flush(r);
                break;
            case T_DISCARD:
                blk.pdiscard(r.offset, r.bytes, r);
                break;
            default:
                blk.pwriteZeroes(r.offset, r.bytes, r.flags, r);
                break;
        }
    }

    /** The backend finished the request (backend context); answer it in the queue's context. */
    void blockCompleted(VirtioBlkReq r) {
        r.status = BlockErrorStatus.status(r.type, r.ret);
        QueueState qs = r.queue;
        if (qs.ctx == blk.context() || qs.ctx.inHomeThread()) {
            finish(r);
        } else {
            inTransit.incrementAndGet();
            qs.completions.push(r);
        }
        observer.blockCompleted(qs.index, qs.ctx != blk.context() && !qs.ctx.inHomeThread());
    }

    /** Status byte last, then the used ring; the guest is interrupted at the end of the batch. Queue context. */
    void finish(VirtioBlkReq r) {
        QueueState qs = r.queue;
        if (unrealized) {
            afterUnrealize(r);
            return;
        }
        // A request an IOThread popped while the reset was starting carries the new epoch: isResetPending drops it.
        if (r.epoch == epoch && !isResetPending()) {
            HostMemory.putU8(r.statusAddr, r.status);
            qs.vq.push(r.elem, r.inLen);
            qs.vq.flush();
            qs.scheduleNotify();
            observer.completed(qs.index, r.status);
        } else {
            qs.vq.detach(r.elem); // from before a reset: released, never written into the new rings
        }
        if (TRACE) {
            LOG.trace("virtio_blk_req_complete dev={} vq={} status={}", name(), qs.index, r.status);
        }
        qs.give(r);
        if (inFlight.decrementAndGet() == 0) {
            homeContext().aioWait().kick();
        }
    }

    /**
     * A completion for a device already torn down: its rings and interrupt
     * path are gone, so nothing is written or signalled; it is counted and
     * logged once (QEMU before 7bfde688fb went on into freed memory).
     */
    private void afterUnrealize(VirtioBlkReq r) {
        if (completionsAfterUnrealize.getAndIncrement() == 0) {
            LOG.warn("{} vq{}: a request completed after the device was unrealized (status {}); dropped", name(),
                    r.queue.index, r.status);
        }
        r.queue.give(r);
        inFlight.decrementAndGet();
    }

    /** Called by the hand-off from the backend context: pushed and notified first, then no longer in transit. */
    void finishHandedOff(VirtioBlkReq r) {
        finish(r);
        transitDone();
    }

    /**
     * A crossing between contexts ended. A drain of the backend waits while
     * any is under way ({@link #drainedPoll}), from the main loop: wake it when
     * the last one ends (QEMU's aio_wait_kick), or it sleeps on with its
     * condition already false.
     */
    private void transitDone() {
        if (inTransit.decrementAndGet() == 0) {
            homeContext().aioWait().kick();
        }
    }

    /**
     * The interrupt for a queue's batch. The path is chosen by the thread, as
     * QEMU has done since bfa36802d1 ({@code qemu_in_iothread()}): the
     * notification BH of a queue served by an IOThread runs there and takes
     * the irqfd ({@code viaIrqfd}, bound with the queue's context); a queue
     * served by the main loop takes the main-loop path ({@code virtio_notify}).
     * Bug 016's legacy switch restores the pre-fix condition, the device state
     * {@code ioeventfd_started}: a stop clears it before draining, so a batch
     * an IOThread completes inside that drain takes the main-loop path off the
     * main thread. That path may be taken only in the home thread; a call from
     * anywhere else is counted ({@link #offThreadNotifications()}), whatever the switch.
     */
    void signalGuest(VirtQueue vq, boolean viaIrqfd) {
        boolean irqfd = viaIrqfd;
        if (homeContext().legacy().isOn(LegacyBehavior.IRQFD_CHOICE_BY_IOEVENTFD_STATE)) {
            IoeventfdOps ops = ioeventfd;
            irqfd = ops != null && ops.ioeventfdStarted();
        }
        if (irqfd) {
            notifyGuestIrqfd(vq);
        } else {
            if (!homeContext().inHomeThread() && offThreadNotifications.getAndIncrement() == 0) {
                LOG.warn("{} vq{}: guest notified through the main-loop path from thread '{}'", name(), vq.index(),
                        Thread.currentThread().getName());
            }
            notifyGuest(vq);
        }
        observer.notified(vq.index(), irqfd);
    }

    /**
     * How many batches were signalled through the main-loop path
     * ({@code virtio_notify}, which QEMU runs under the BQL) from a thread
     * other than the home thread: an invariant violation (bug 016).
     */
    public long offThreadNotifications() {
        return offThreadNotifications.get();
    }

    @Override
    public String describe() {
        StringBuilder sb = new StringBuilder(super.describe());
        sb.append("  virtio-blk: ").append(capacitySectors).append(" sectors, requests in flight ")
                .append(inFlight.get()).append(", in transit ").append(inTransit.get()).append(", drained ")
                .append(drained).append(", epoch ").append(epoch).append(unrealized ? ", unrealized" : "")
                .append('\n');
        for (QueueState q : queues) {
            sb.append("  vq").append(q.index).append(" served in ").append(q.ctx.name())
                    .append(q.notifyPending ? " (notification pending)" : "").append('\n');
        }
        return sb.toString();
    }
}
