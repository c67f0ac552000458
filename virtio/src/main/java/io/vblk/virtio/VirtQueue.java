package io.vblk.virtio;

import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.VisibilityModel;

import java.lang.invoke.VarHandle;

import io.vblk.aio.AioHandler;
import io.vblk.aio.EventNotifier;

import static io.vblk.virtio.VirtioRing.*;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The device side of one split virtqueue (virtio 1.2 section 2.7) living in
 * guest memory: QEMU's {@code VirtQueue} with {@code virtqueue_pop},
 * {@code virtqueue_fill}/{@code virtqueue_flush},
 * {@code virtio_queue_set_notification} and {@code virtio_should_notify}.
 *
 * <h2>Configuration</h2>
 * The driver programs size and the three ring addresses (through the
 * transport's registers, or vhost-user messages), then {@link #enable()}
 * validates them and maps the rings once, like QEMU's vring region caches:
 * afterwards ring fields are plain loads and stores at host addresses.
 *
 * <h2>Bad guest input</h2>
 * Every malformed thing a driver can hand over (a descriptor index past the
 * table, a loop, a chain longer than the queue, an indirect table of a bad
 * length or nested, a buffer outside RAM, readable after writable buffers,
 * avail.idx running more than a queue ahead, misaligned or unmapped rings)
 * breaks the queue: it logs one WARN naming the queue and the reason, tells
 * its {@link ErrorListener} (the device marks itself DEVICE_NEEDS_RESET and
 * raises a configuration-change interrupt, QEMU's {@code virtio_error}), and
 * pops nothing and writes nothing to the rings until {@link #reset()}.
 * Nothing is thrown.
 *
 * <h2>Threads and memory ordering</h2>
 * A queue is used by one thread at a time: its home context's (the main
 * loop, or an iothread under the dataplane). Only {@link #markBroken()},
 * {@link #isBroken()}, {@link #isEnabled()} and {@link #hostNotifier()} may be
 * called from elsewhere. Ordering against the driver uses the fences the
 * specification requires: acquire after reading avail.idx (before reading
 * ring entries and descriptors), release before publishing used.idx, full
 * between re-enabling notifications and re-checking the ring, and full
 * between publishing used entries and reading the driver's suppression
 * fields.
 *
 * <h2>The notification loop</h2>
 * A handler that must not lose a kick runs QEMU's loop:
 * <pre>{@code
 * do {
 *     vq.setNotification(false);
 *     while (vq.pop(e)) { ... }
 *     vq.setNotification(true);   // ends with a full fence
 * } while (!vq.isEmpty());        // re-reads avail.idx
 * }</pre>
 * Per request nothing is allocated: elements are the caller's, reused.
 *
 * <p>Collaborators, one concept each: {@link VringRegions} checks and maps the
 * rings at enable, {@link DescriptorChainWalker} reads and validates each
 * popped chain, {@link UsedSignal} decides whether an interrupt is due. This
 * class keeps the ring indices and the notification state between them.
 */
public final class VirtQueue {
    private static final Logger LOG = LoggerFactory.getLogger(VirtQueue.class);
    private static final boolean TRACE = LOG.isTraceEnabled();


    /** Who is told when bad guest input breaks the queue (the device: QEMU's {@code virtio_error}). */
    @FunctionalInterface
    public interface ErrorListener {
        /** Called once per breakage, in the thread that found it; must not throw (a throw is logged and dropped). */
        void queueBroken(VirtQueue vq, String reason);
    }

    private final String owner;
    private final int index;
    private final int maxSize;
    /** Replaced only while the queue is disabled ({@link #setMemory}); null until a vhost-user memory table arrives. */
    private GuestMemory mem;
    private final ErrorListener listener;

    // driver-programmed configuration
    private int size;
    private long descGpa;
    private long availGpa;
    private long usedGpa;
    private volatile boolean enabled;

    // mapped rings (host addresses), valid while enabled
    private long desc;
    private long avail;
    private long used;
    private int mask;
    private boolean eventIdx;
    private boolean indirectDesc;

    // ring state (16-bit free-running indices kept in ints)
    private int lastAvailIdx;
    private int shadowAvailIdx;
    private int usedIdx;
    private int pendingUsed;
    private int inUse;
    private boolean notification = true;
    private final UsedSignal usedSignal = new UsedSignal();
    private volatile boolean broken;
    private volatile String brokenReason;

    private volatile EventNotifier hostNotifier;
    /** The AioHandler serving the host notifier, while attached (see {@link VirtioDevice#attachHostNotifier}). */
    volatile AioHandler hostNotifierHandler;

    /** Walks and validates the chains this queue pops. */
    private final DescriptorChainWalker chains = new DescriptorChainWalker(this);

    private long pops;
    private long pushes;

    /** The machine's legacy switches (bug 019's barrier); null for a queue outside a device. */
    private LegacySwitches legacy;
    /** Null unless a memory-ordering scenario runs: then the kick-suppression store is buffered (bug 019). */
    private VisibilityModel visibility;

    /** Dirty logging while a migration runs (VHOST_F_LOG_ALL), or null: no cost beyond the null check. */
    private DirtyLog dirtyLog;
    /** Guest-physical address the used ring's writes are logged at (VHOST_VRING_F_LOG), or -1: not logged. */
    private long usedLogGpa = -1;

    /** vhost-user inflight tracking of this queue, or null (the in-process device never has one). */
    private InflightRegion inflight;
    /** Heads a previous back-end left in flight, resubmitted before the avail ring is read again. */
    private int[] resubmit = new int[0];
    private int resubmitPos;

    /**
     * @param owner    name for logs (the device's)
     * @param maxSize  largest size the driver may choose: a power of two in 1..32768
     * @param listener told when bad guest input breaks the queue
     */
    public VirtQueue(String owner, int index, int maxSize, GuestMemory mem, ErrorListener listener) {
        if (maxSize <= 0 || maxSize > MAX_SIZE || Integer.bitCount(maxSize) != 1) {
            throw new IllegalArgumentException("queue size must be a power of two in 1.." + MAX_SIZE + ", got " + maxSize);
        }
        this.owner = owner;
        this.index = index;
        this.maxSize = maxSize;
        this.mem = mem;
        this.listener = listener;
        this.size = maxSize;
    }

    public int index() {
        return index;
    }

    public int maxSize() {
        return maxSize;
    }

    public GuestMemory memory() {
        return mem;
    }

    /**
     * Switches the queue to a new guest memory layout (a vhost-user back-end's
     * memory table changed: libvhost-user's {@code vu_set_mem_table} followed
     * by re-mapping the rings). Only while disabled: {@link #enable()} maps the
     * rings in the new layout. Null means no memory yet; the queue then cannot
     * be enabled.
     */
    public void setMemory(GuestMemory m) {
        checkDisabled("guest memory");
        mem = m;
    }

    // ------------------------------------------------------------------ configuration

    /** The size the driver chose (defaults to {@link #maxSize()}); validated by {@link #enable()}. */
    public int size() {
        return size;
    }

    public void setSize(int size) {
        checkDisabled("size");
        this.size = size;
    }

    /** Guest-physical address of the descriptor table (queue_desc). */
    public long descAddr() {
        return descGpa;
    }

    public void setDescAddr(long gpa) {
        checkDisabled("descriptor table address");
        descGpa = gpa;
    }

    /** Guest-physical address of the available ring, the driver area (queue_driver). */
    public long availAddr() {
        return availGpa;
    }

    public void setAvailAddr(long gpa) {
        checkDisabled("available ring address");
        availGpa = gpa;
    }

    /** Guest-physical address of the used ring, the device area (queue_device). */
    public long usedAddr() {
        return usedGpa;
    }

    public void setUsedAddr(long gpa) {
        checkDisabled("used ring address");
        usedGpa = gpa;
    }

    private void checkDisabled(String what) {
        if (enabled) {
            throw new IllegalStateException(owner + " queue " + index + ": " + what + " changed while enabled");
        }
    }

    /** Applies the negotiated ring features (EVENT_IDX, INDIRECT_DESC): at FEATURES_OK or vhost-user SET_FEATURES. */
    public void setFeatures(long negotiated) {
        eventIdx = (negotiated & VirtioFeatures.EVENT_IDX) != 0;
        indirectDesc = (negotiated & VirtioFeatures.INDIRECT_DESC) != 0;
    }

    /**
     * Validates the configuration and maps the rings ({@link VringRegions}): QEMU's
     * {@code virtio_queue_enable} and {@code virtio_init_region_cache}. A size
     * that is not a power of two up to {@link #maxSize()}, a misaligned ring,
     * or a ring outside RAM breaks the queue. Returns whether it is enabled.
     */
    public boolean enable() {
        if (enabled) {
            return true;
        }
        if (broken) {
            return false;
        }
        if (mem == null) {
            return fail("no guest memory to map the rings in");
        }
        int n = size;
        VringRegions rings = VringRegions.map(mem, n, maxSize, descGpa, availGpa, usedGpa);
        if (rings.problem != null) {
            return fail(rings.problem);
        }
        desc = rings.desc;
        avail = rings.avail;
        used = rings.used;
        mask = n - 1;
        enabled = true;
        if (LOG.isDebugEnabled()) {
            LOG.debug("{} vq{} enabled: size {} desc 0x{} avail 0x{} used 0x{} event_idx={} indirect={}", owner, index,
                    n, Long.toHexString(descGpa), Long.toHexString(availGpa), Long.toHexString(usedGpa), eventIdx,
                    indirectDesc);
        }
        return true;
    }

    /** Stops using the rings but keeps indices (vhost-user GET_VRING_BASE stops a ring this way). */
    public void disable() {
        enabled = false;
        dirtyLog = null;
        usedLogGpa = -1;
        inflight = null;
        resubmit = new int[0];
        resubmitPos = 0;
    }

    /**
     * Tracks this enabled queue's requests in {@code region}
     * (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD) and resumes from what it holds:
     * the heads a previous back-end left in flight are popped first, oldest
     * first, and reading the avail ring continues at {@code used.idx} plus
     * their number (libvhost-user's {@code vu_check_queue_inflights}: the
     * front-end's ring base may predate them). Call after {@link #enable()} and
     * {@link #setUsedIdx}. Returns how many requests will be resubmitted.
     */
    public int setInflight(InflightRegion region) {
        if (!enabled) {
            throw new IllegalStateException(owner + " vq" + index + ": inflight tracking of a disabled queue");
        }
        inflight = region;
        int[] heads = region.recover(usedIdx);
        resubmit = heads;
        resubmitPos = 0;
        if (heads.length > 0) {
            setLastAvailIdx(usedIdx + heads.length);
            LOG.info("{} vq{}: resubmitting {} request(s) left in flight by the previous back-end; avail resumes at {}",
                    owner, index, heads.length, lastAvailIdx);
        }
        return heads.length;
    }

    public InflightRegion inflight() {
        return inflight;
    }

    /**
     * Logs this queue's writes to guest memory in {@code log} (null: stop
     * logging): the data of every chain pushed, and — when {@code usedLogGpa}
     * is not negative (the front-end set VHOST_VRING_F_LOG with that
     * {@code log_guest_addr}) — every write to the used ring. Only while the
     * queue is not processing (the dataplane is stopped).
     */
    public void setDirtyLog(DirtyLog log, long usedLogGpa) {
        this.dirtyLog = log;
        this.usedLogGpa = log == null ? -1 : usedLogGpa;
    }

    /** A write to the used ring at {@code offset}: logged at the ring's log address. */
    private void logUsed(long offset, int len) {
        if (usedLogGpa >= 0) {
            dirtyLog.logWrite(usedLogGpa + offset, len);
        }
    }

    public boolean isEnabled() {
        return enabled;
    }

    /**
     * Forgets everything the driver set up: QEMU's per-queue part of
     * {@code virtio_reset}. The device must have quiesced the queue (nothing in
     * flight, no thread inside pop or push). Host-notifier wiring is the
     * transport's and stays.
     */
    public void reset() {
        enabled = false;
        dirtyLog = null;
        usedLogGpa = -1;
        inflight = null;
        resubmit = new int[0];
        resubmitPos = 0;
        size = maxSize;
        descGpa = 0;
        availGpa = 0;
        usedGpa = 0;
        desc = 0;
        avail = 0;
        used = 0;
        mask = 0;
        eventIdx = false;
        indirectDesc = false;
        lastAvailIdx = 0;
        shadowAvailIdx = 0;
        usedIdx = 0;
        pendingUsed = 0;
        inUse = 0;
        notification = true;
        usedSignal.reset();
        broken = false;
        brokenReason = null;
    }

    // ------------------------------------------------------------------ save / restore (vhost-user ring base)

    /** The next avail ring slot the device will read: VHOST_USER_GET_VRING_BASE. */
    public int lastAvailIdx() {
        return lastAvailIdx;
    }

    /** VHOST_USER_SET_VRING_BASE: resume reading the avail ring at {@code idx}. */
    public void setLastAvailIdx(int idx) {
        lastAvailIdx = idx & 0xffff;
        shadowAvailIdx = lastAvailIdx;
    }

    /** The used.idx the device has published (plus nothing pending). */
    public int usedIdx() {
        return usedIdx;
    }

    /** Where the device continues writing the used ring (restored with the ring base; normally used.idx in memory). */
    public void setUsedIdx(int idx) {
        usedIdx = idx & 0xffff;
        usedSignal.forget();
    }

    /** Chains popped since the queue was made (a statistic; racy read from other threads). */
    public long pops() {
        return pops;
    }

    /**
     * How many times {@link #shouldNotify()} said to interrupt the driver: the
     * interrupts the device sent for this queue (a statistic; racy read).
     */
    public long signals() {
        return usedSignal.signals();
    }

    /** Chains popped and not yet pushed or detached: QEMU's {@code vq->inuse}. */
    public int inUse() {
        return inUse;
    }

    // ------------------------------------------------------------------ consuming the avail ring

    /**
     * Whether the driver made buffers available that were not popped yet: one
     * 16-bit load, no syscall, no side effect. For an {@code AioHandler}'s
     * {@code ioPoll} (busy polling); {@link #pop} does the validation.
     */
    public boolean hasWork() {
        if (!enabled || broken) {
            return false;
        }
        if (resubmitPos < resubmit.length) {
            return true;
        }
        boolean work = HostMemory.getU16LE(avail + AVAIL_IDX) != lastAvailIdx;
        VarHandle.acquireFence();
        return work;
    }

    /**
     * Whether nothing is available: QEMU's {@code virtio_queue_empty}. Re-reads
     * avail.idx from memory when everything seen so far was popped, so it is
     * the re-check after {@code setNotification(true)}.
     */
    public boolean isEmpty() {
        if (!enabled || broken) {
            return true;
        }
        if (shadowAvailIdx != lastAvailIdx || resubmitPos < resubmit.length) {
            return false;
        }
        if (!refreshAvailIdx()) {
            return true;
        }
        return shadowAvailIdx == lastAvailIdx;
    }

    /** Reads avail.idx, checks the driver did not run more than a queue ahead, then orders later reads after it. */
    private boolean refreshAvailIdx() {
        int idx = HostMemory.getU16LE(avail + AVAIL_IDX);
        int pending = (idx - lastAvailIdx) & 0xffff;
        if (pending > size) {
            return fail(String.format("avail.idx jumped from %d to %d: %d new entries in a queue of %d",
                    lastAvailIdx, idx, pending, size));
        }
        shadowAvailIdx = idx;
        // virtio 2.7.13: the driver wrote the ring entries and descriptors before
        // avail.idx (with a release barrier); read them only after reading idx.
        VarHandle.acquireFence();
        return true;
    }

    /**
     * Pops the next available chain into {@code e}: QEMU's
     * {@code virtqueue_pop}, without allocation. Returns false when nothing is
     * available, the queue is not enabled, or it is (or just became) broken; the
     * element is then empty. Never throws on guest input.
     */
    public boolean pop(VirtQueueElement e) {
        if (!enabled || broken) {
            e.clear();
            return false;
        }
        if (resubmitPos < resubmit.length) {
            return popResubmitted(e);
        }
        if (shadowAvailIdx == lastAvailIdx && (!refreshAvailIdx() || shadowAvailIdx == lastAvailIdx)) {
            e.clear();
            return false;
        }
        if (inUse >= size) {
            fail("more than " + size + " chains in use at once (the driver reused descriptors the device owns)");
            e.clear();
            return false;
        }
        int head = HostMemory.getU16LE(avail + AVAIL_RING + 2L * (lastAvailIdx & mask));
        lastAvailIdx = (lastAvailIdx + 1) & 0xffff;
        if (eventIdx && notification) {
            // keep the driver kicking for anything after what was just taken
            HostMemory.putShortLE(used + availEventOffset(size), lastAvailIdx);
            if (dirtyLog != null) {
                logUsed(availEventOffset(size), 2);
            }
        }
        if (!chains.readChain(mem, desc, size, indirectDesc, head, e)) {
            e.clear();
            return false;
        }
        if (inflight != null) {
            inflight.popped(head);
        }
        inUse++;
        pops++;
        if (TRACE) {
            LOG.trace("{} vq{} pop head={} segs={} readable={}B writable={}B last_avail={} inuse={}", owner, index,
                    head, e.segmentCount(), e.readableBytes(), e.writableBytes(), lastAvailIdx, inUse);
        }
        return true;
    }

    /** The next head a previous back-end left in flight: read again, not taken from the avail ring. */
    private boolean popResubmitted(VirtQueueElement e) {
        int head = resubmit[resubmitPos++];
        if (!chains.readChain(mem, desc, size, indirectDesc, head, e)) {
            e.clear();
            return false;
        }
        inUse++;
        pops++;
        return true;
    }

    // ------------------------------------------------------------------ producing the used ring

    /**
     * Writes a used entry for {@code e} (QEMU's {@code virtqueue_fill});
     * invisible to the driver until {@link #flush()}. {@code writtenLen} is the
     * number of bytes written into the chain's writable part. On a broken or
     * disabled queue nothing is written (QEMU drops fills of a broken device).
     */
    public void push(VirtQueueElement e, int writtenLen) {
        if (e.head() < 0 || writtenLen < 0 || writtenLen > e.writableBytes()) {
            throw new IllegalArgumentException(owner + " vq" + index + ": bad push of " + e + " with length "
                    + writtenLen);
        }
        if (inUse > 0) {
            inUse--;
        }
        if (!enabled || broken) {
            return;
        }
        int slot = (usedIdx + pendingUsed) & mask;
        long entry = used + USED_RING + (long) USED_ELEM_SIZE * slot;
        HostMemory.putIntLE(entry, e.head());
        HostMemory.putIntLE(entry + 4, writtenLen);
        if (dirtyLog != null) {
            logPushed(e, slot);
        }
        if (inflight != null) {
            inflight.pushed(e.head());
        }
        pendingUsed++;
        pushes++;
        if (TRACE) {
            LOG.trace("{} vq{} push head={} len={} slot={}", owner, index, e.head(), writtenLen, slot);
        }
    }

    /** The chain's device-writable buffers (its data and status byte) and its used entry, before publication. */
    private void logPushed(VirtQueueElement e, int slot) {
        for (int i = 0, n = e.segmentCount(); i < n; i++) {
            if (e.isWritable(i)) {
                dirtyLog.logHostWrite(e.hostAddress(i), e.length(i));
            }
        }
        logUsed(USED_RING + (long) USED_ELEM_SIZE * slot, USED_ELEM_SIZE);
    }

    /**
     * Publishes every pushed entry by advancing used.idx (QEMU's
     * {@code virtqueue_flush}); a release fence first, so the driver sees the
     * entries (and the data written into its buffers) before the index.
     */
    public void flush() {
        int n = pendingUsed;
        if (n == 0) {
            return;
        }
        pendingUsed = 0;
        if (!enabled || broken) {
            return;
        }
        int old = usedIdx;
        int now = (old + n) & 0xffff;
        VarHandle.releaseFence();
        HostMemory.putShortLE(used + USED_IDX, now);
        if (dirtyLog != null) {
            logUsed(USED_IDX, 2);
        }
        usedIdx = now;
        if (inflight != null) {
            inflight.flushed(n, now);
        }
        usedSignal.published(old, now);
        if (TRACE) {
            LOG.trace("{} vq{} flush used.idx {} -> {}", owner, index, old, now);
        }
    }

    /** Forgets a popped chain without using it (QEMU's {@code virtqueue_detach_element}): e.g. a request dropped at reset. */
    public void detach(VirtQueueElement e) {
        if (inUse > 0) {
            inUse--;
        }
        e.clear();
    }

    // ------------------------------------------------------------------ notification suppression

    /**
     * Asks the driver to kick (true) or not to bother (false) when it adds
     * buffers: QEMU's {@code virtio_queue_set_notification}. Without EVENT_IDX
     * this is used.flags' NO_NOTIFY bit; with it, enabling writes avail_event
     * (kick me for the next entry) and disabling just stops advancing it.
     * Enabling ends with a full fence so the caller's {@link #isEmpty()}
     * re-check cannot be ordered before it.
     */
    public void setNotification(boolean enable) {
        notification = enable;
        if (!enabled || broken) {
            return;
        }
        if (eventIdx) {
            if (enable) {
                storeSuppression(used + availEventOffset(size), HostMemory.getU16LE(avail + AVAIL_IDX), "avail_event");
                if (dirtyLog != null) {
                    logUsed(availEventOffset(size), 2);
                }
            }
        } else {
            storeSuppression(used, enable ? 0 : USED_F_NO_NOTIFY, "used.flags");
            if (dirtyLog != null) {
                logUsed(0, 2);
            }
        }
        if (enable) {
            fenceAfterEnable();
        }
    }

    /**
     * The machine's ordering context, from the device that adds the queue:
     * its legacy switches and, in a memory-ordering scenario, its store-buffer
     * model.
     */
    void bindOrdering(LegacySwitches switches, VisibilityModel model) {
        this.legacy = switches;
        this.visibility = model;
    }

    /** used.flags or avail_event: under a scenario's model the store waits in this thread's store buffer. */
    private void storeSuppression(long addr, int v, String what) {
        VisibilityModel vm = visibility;
        if (vm == null) {
            HostMemory.putShortLE(addr, v);
            return;
        }
        vm.storeLater(owner + " vq" + index + " " + what + " = " + v, () -> HostMemory.putShortLE(addr, v));
    }

    /**
     * QEMU's {@code smp_mb()} in {@code virtio_queue_set_notification}:
     * expose the suppression field before the caller re-reads avail.idx, or
     * the driver may read the old field after the device read the old index,
     * and neither kicks nor pops. {@link LegacyBehavior#NO_MB_ON_ENABLE_NOTIFICATION}
     * removes exactly this barrier.
     */
    private void fenceAfterEnable() {
        LegacySwitches sw = legacy;
        if (sw != null && sw.isOn(LegacyBehavior.NO_MB_ON_ENABLE_NOTIFICATION)) {
            return;
        }
        VisibilityModel vm = visibility;
        if (vm != null) {
            vm.fence("virtio_queue_set_notification");
        } else {
            VarHandle.fullFence();
        }
    }

    public boolean isNotificationEnabled() {
        return notification;
    }

    /**
     * Whether the driver wants an interrupt for what was published since the
     * last time this returned true ({@link UsedSignal}): QEMU's {@code virtio_should_notify}. With
     * EVENT_IDX it compares used_event against the published range
     * ({@code vring_need_event}); otherwise it honours VRING_AVAIL_F_NO_INTERRUPT.
     * A true result is a promise to interrupt: it records what was signalled.
     */
    public boolean shouldNotify() {
        if (!enabled || broken) {
            return false;
        }
        // The used entries and idx must be visible before reading the driver's suppression fields.
        VarHandle.fullFence();
        int now = usedIdx;
        boolean notify = usedSignal.shouldNotify(now, avail, size, eventIdx);
        if (TRACE) {
            LOG.trace("{} vq{} should_notify used.idx={} -> {}", owner, index, now, notify);
        }
        return notify;
    }


    // ------------------------------------------------------------------ errors

    /** Breaks the queue for bad guest input (once): one WARN, then the listener. Returns false for the caller's return. */
    boolean fail(String reason) {
        if (broken) {
            return false;
        }
        broken = true;
        brokenReason = reason;
        LOG.warn("{}: virtqueue {}: {}; device needs reset", owner, index, reason);
        try {
            listener.queueBroken(this, reason);
        } catch (RuntimeException ex) {
            LOG.error("{}: virtqueue {}: error listener threw", owner, index, ex);
        }
        return false;
    }

    /** Stops the queue without a log line: the device is broken because of another queue. Any thread. */
    public void markBroken() {
        broken = true;
    }

    public boolean isBroken() {
        return broken;
    }

    /** Why the queue broke (the first reason), or null. */
    public String brokenReason() {
        return brokenReason;
    }

    // ------------------------------------------------------------------ host notifier (ioeventfd)

    /** The ioeventfd the transport signals for this queue's kicks, or null while kicks are dispatched directly. */
    public EventNotifier hostNotifier() {
        return hostNotifier;
    }

    /**
     * Installs (or, with null, removes) the eventfd this queue's kicks arrive
     * on: the PCI transport's ioeventfd, or a vhost-user back-end's
     * SET_VRING_KICK descriptor. Detach any handler serving the old one first.
     */
    public void setHostNotifier(EventNotifier n) {
        hostNotifier = n;
    }

    /** The queue's state for a watchdog dump. */
    public String describe() {
        return String.format("%s vq%d: size=%d %s%s last_avail=%d shadow_avail=%d used=%d pending=%d inuse=%d "
                + "notification=%s event_idx=%s pops=%d pushes=%d host_notifier=%s", owner, index, size,
                enabled ? "enabled" : "disabled", broken ? " BROKEN(" + brokenReason + ")" : "", lastAvailIdx,
                shadowAvailIdx, usedIdx, pendingUsed, inUse, notification ? "on" : "off", eventIdx, pops, pushes,
                hostNotifier == null ? "none (direct)" : hostNotifier + (hostNotifierHandler == null ? " detached"
                        : " attached"));
    }

    @Override
    public String toString() {
        return owner + " vq" + index;
    }
}
