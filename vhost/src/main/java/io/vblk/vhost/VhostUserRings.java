package io.vblk.vhost;

import static io.vblk.vhost.VhostUserProtocol.F_LOG_ALL;
import static io.vblk.vhost.VhostUserProtocol.F_PROTOCOL_FEATURES;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioWait;
import io.vblk.aio.EventNotifier;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.InflightRegion;
import io.vblk.virtio.NotifierBus;
import io.vblk.virtio.VirtQueue;
import io.vblk.virtio.VirtioDevice;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioStatus;
import io.vblk.virtio.blk.IoeventfdOps;
import io.vblk.virtio.VirtioRing;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntSupplier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Ring state of a vhost-user back-end: libvhost-user's {@code dev->vq[]}
 * ({@link VhostUserRing}, its {@code VuVirtq}) and what the
 * {@code vu_set_vring_*_exec} / {@code vu_get_vring_base_exec} handlers do
 * to it, turned into starting and stopping the same {@link VirtQueue}s and
 * dataplane ({@link IoeventfdOps}, the {@code VirtioBlkDataplane}) that
 * serve the in-process virtio-pci device — the back-end's half of QEMU's
 * {@code vhost_dev_start}/{@code vhost_dev_stop}. The message dispatch
 * ({@link VhostUserDispatcher}) decodes and checks the payloads; this class
 * only changes state.
 *
 * <h2>When a ring runs</h2>
 * A ring runs when it is started (it has a kick descriptor; GET_VRING_BASE
 * stops it) and enabled (SET_VRING_ENABLE, or always when
 * VHOST_USER_F_PROTOCOL_FEATURES was not negotiated), the front-end's
 * features were set and a memory table exists. The dataplane starts and
 * stops all queues of a device together, so every change to the set of
 * running rings, to a running ring's configuration or to the memory table
 * goes through its ordinary stop path — handlers detached, backend drained,
 * every completion pushed to the used ring and signalled on the call
 * descriptor — and, if rings remain, its start path with the new set
 * ({@link #reconcile}). GET_VRING_BASE therefore answers only once nothing
 * popped from that ring is outstanding. Queues whose rings do not run keep a
 * disabled {@link VirtQueue} and an idle notifier.
 *
 * <p>The virtio status machine is driven on the front-end's behalf: when
 * rings first start, the device is reset if it held other features, then
 * given the features of SET_FEATURES, FEATURES_OK and DRIVER_OK — which
 * starts the dataplane through {@code onDriverOk}, as a driver's write does.
 *
 * <h2>The dataplane's notifier bus</h2>
 * As {@code VirtioPciTransport} is in-process: a running ring's
 * SET_VRING_KICK descriptor becomes its queue's host notifier (served by the
 * queue's IOThread, exactly like an ioeventfd), its SET_VRING_CALL
 * descriptor its guest notifier (signalled from the IOThread, exactly like
 * an irqfd), SET_VRING_ERR is signalled when bad guest input breaks the
 * device.
 *
 * <p>Threads: home context (the back-end's main loop), except
 * {@link #signalCall} and {@link #signalErr}, which any thread may call.
 */
final class VhostUserRings implements NotifierBus {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserRings.class);

    private final VirtioDevice dev;
    private final AioContext home;
    private final MemoryTable mem;
    private final VhostUserRing[] rings;
    private IoeventfdOps dataplane;
    /** The dirty log (SET_LOG_BASE), or null; used while VHOST_F_LOG_ALL is negotiated. Home thread only. */
    private VhostUserLog log;
    /** The inflight region (GET/SET_INFLIGHT_FD), or null; home thread only. */
    private InflightTable inflight;
    private volatile VhostUserEvents events = VhostUserEvents.NONE;

    // home thread only
    private long ackedFeatures;
    private boolean featuresSet;
    private boolean running;
    /** Rings the dataplane serves (while running) or is about to serve (while starting). */
    private long runningMask;
    /**
     * Rings announced on this connection: only a ring's first start (with a
     * call descriptor to signal) announces the used entries it found.
     */
    private long startedOnConnection;
    /** Rings whose used index was not 0 when they were mapped (read there, before the dataplane runs). */
    private long usedAtStart;
    private int hostNotifiersOn;
    private volatile boolean guestNotifiers;

    VhostUserRings(VirtioDevice dev, MemoryTable mem) {
        this.dev = dev;
        this.home = dev.homeContext();
        this.mem = mem;
        this.rings = new VhostUserRing[dev.numQueues()];
        for (int i = 0; i < rings.length; i++) {
            rings[i] = new VhostUserRing(i, dev.queue(i).maxSize());
        }
    }

    void setDataplane(IoeventfdOps ops) {
        if (dataplane != null) {
            throw new IllegalStateException(dev.name() + ": dataplane already set");
        }
        dataplane = ops;
    }

    private IoeventfdOps dp() {
        if (dataplane == null) {
            throw new IllegalStateException(dev.name() + ": no dataplane (setDataplane was not called)");
        }
        return dataplane;
    }

    void setEvents(VhostUserEvents e) {
        events = e;
    }

    int count() {
        return rings.length;
    }

    /** Ring {@code index} as a message names it; refused if the device has no such ring. */
    VhostUserRing ring(long index) {
        if (index < 0 || index >= rings.length) {
            throw new Refusal("ring " + index + " does not exist (the device has " + rings.length + ")");
        }
        return rings[(int) index];
    }

    boolean isRunning() {
        return running;
    }

    // ------------------------------------------------------------------ front-end features

    /** SET_FEATURES (checked against the offer): the rings run with these from their next start. */
    void setFeatures(long f) {
        if (featuresSet && f == ackedFeatures) {
            return;
        }
        stopIfRunning();
        ackedFeatures = f;
        featuresSet = true;
        LOG.debug("{}: front-end features 0x{}", dev.name(), Long.toHexString(f));
        reconcile();
    }

    private boolean protocolFeaturesNegotiated() {
        return (ackedFeatures & F_PROTOCOL_FEATURES) != 0;
    }

    // ------------------------------------------------------------------ SET_VRING_* and GET_VRING_BASE

    void setNum(VhostUserRing r, int num) {
        stopIfServing(r);
        r.num = num;
        reconcile();
    }

    void setAddr(VhostUserRing r, long desc, long used, long avail, boolean logUsed, long logAddr) {
        stopIfServing(r);
        r.descUaddr = desc;
        r.usedUaddr = used;
        r.availUaddr = avail;
        r.logUsed = logUsed;
        r.logGuestAddr = logAddr;
        r.addrSet = true;
        reconcile();
    }

    void setBase(VhostUserRing r, int base) {
        stopIfServing(r);
        r.base = base;
        reconcile();
    }

    /**
     * GET_VRING_BASE: stops the ring — the dataplane's stop path (handlers
     * detached, drained, every completion pushed and signalled) — and returns
     * the next avail index to read. libvhost-user closes the kick and call
     * descriptors here; so do we.
     */
    int stop(VhostUserRing r) {
        stopIfServing(r);
        r.started = false;
        r.setKick(null);
        r.setCall(null);
        LOG.debug("{}: ring {} stopped at base {}", dev.name(), r.index, r.base);
        reconcile();
        return r.base;
    }

    /**
     * SET_VRING_KICK: the ring is started with this kick descriptor. The
     * descriptor is taken from the message only once a ring it replaces was
     * stopped, so a failing stop leaves it to the message (which closes it).
     */
    void setKick(VhostUserRing r, IntSupplier fd) {
        stopIfServing(r);
        r.setKick(EventNotifier.adopt(fd.getAsInt()));
        r.started = true;
        reconcile();
    }

    /**
     * SET_VRING_CALL, on the fly: the next signal uses the new descriptor
     * (null: none). A front-end may send it after SET_VRING_KICK started the
     * ring; the start's announcement waits for it.
     */
    void setCall(VhostUserRing r, EventNotifier n) {
        r.setCall(n);
        if (n != null && running && (runningMask & (1L << r.index)) != 0) {
            announceUsedEntries(1L << r.index);
        }
    }

    /** SET_VRING_ERR: signalled when bad guest input breaks the device (null: none). */
    void setErr(VhostUserRing r, EventNotifier n) {
        r.setErr(n);
    }

    void setEnabled(VhostUserRing r, boolean on) {
        if (!protocolFeaturesNegotiated()) {
            LOG.warn("{}: SET_VRING_ENABLE without VHOST_USER_F_PROTOCOL_FEATURES negotiated; applying it",
                    dev.name());
        }
        r.enabled = on;
        reconcile();
    }

    // ------------------------------------------------------------------ dirty log

    /** SET_LOG_BASE: the rings log into {@code l} from their next start (a running set is restarted). */
    void setLog(VhostUserLog l) {
        stopIfRunning();
        VhostUserLog old = log;
        log = l;
        l.setRegions(regionsOf(mem));
        if (old != null) {
            old.close();
        }
        LOG.debug("{}: {}", dev.name(), l);
        reconcile();
    }

    private static List<io.vblk.virtio.RamRegion> regionsOf(MemoryTable mem) {
        List<io.vblk.virtio.RamRegion> l = new ArrayList<>();
        for (MemoryTable.Region r : mem.regions()) {
            l.add(r.ram());
        }
        return l;
    }

    boolean logging() {
        return log != null && (ackedFeatures & F_LOG_ALL) != 0;
    }

    VhostUserLog log() {
        return log;
    }

    // ------------------------------------------------------------------ inflight region

    /** GET/SET_INFLIGHT_FD: the rings use {@code t} from their next start; a previous region is unmapped. */
    void setInflight(InflightTable t) {
        stopIfRunning();
        InflightTable old = inflight;
        inflight = t;
        if (old != null) {
            old.close();
        }
        LOG.debug("{}: {}", dev.name(), t);
        reconcile();
    }

    // ------------------------------------------------------------------ memory table changes

    /** Hands the current memory table to the device and its queues; call with the rings stopped. */
    void applyMemory() {
        GuestMemory gm = mem.guestMemory();
        dev.setMemory(gm);
        if (log != null) {
            log.setRegions(regionsOf(mem));
        }
    }

    // ------------------------------------------------------------------ start and stop

    private boolean enabledEff(VhostUserRing r) {
        return r.enabled || !protocolFeaturesNegotiated();
    }

    /** The rings that should run now; 0 while the front-end is not ready. */
    private long wantedMask() {
        if (mem.isEmpty() || !featuresSet) {
            return 0;
        }
        long mask = 0;
        for (VhostUserRing r : rings) {
            if (r.started && r.kick != null && enabledEff(r) && r.num > 0 && r.addrSet) {
                mask |= 1L << r.index;
            }
        }
        return mask;
    }

    private void stopIfServing(VhostUserRing r) {
        if (running && (runningMask & (1L << r.index)) != 0) {
            stopDataplane();
        }
    }

    void stopIfRunning() {
        if (running) {
            stopDataplane();
        }
    }

    /** Stops or (re)starts the dataplane so that exactly the wanted rings run. */
    void reconcile() {
        long want = wantedMask();
        if (running && want != runningMask) {
            stopDataplane();
        }
        if (!running && want != 0) {
            startDataplane(want);
        }
    }

    private void startDataplane(long want) {
        long virtio = ackedFeatures & ~(F_PROTOCOL_FEATURES | F_LOG_ALL);
        int ready = VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK;
        if (dev.isBroken() || (dev.status() & VirtioStatus.DRIVER_OK) == 0 || dev.negotiatedFeatures() != virtio) {
            if (dev.status() != 0) {
                dev.resetNow();
            }
            dev.setDriverFeatures(virtio);
            dev.writeStatus(ready);
            if ((dev.status() & VirtioStatus.FEATURES_OK) == 0) {
                String why = (virtio & VirtioFeatures.VERSION_1) == 0
                        ? "the front-end did not accept VIRTIO_F_VERSION_1 (only virtio 1.x front-ends are served)"
                        : String.format("the device refused the front-end's features 0x%x", virtio);
                LOG.error("{}: rings not started: {}", dev.name(), why);
                events.refused("ring start", why);
                return;
            }
        }
        GuestMemory gm = dev.memory();
        long mask = 0;
        for (VhostUserRing r : rings) {
            if ((want & (1L << r.index)) == 0) {
                continue;
            }
            if (mapRing(r, gm)) {
                mask |= 1L << r.index;
            }
        }
        if (mask == 0) {
            return;
        }
        runningMask = mask;
        hostNotifiersOn = 0;
        if ((dev.status() & VirtioStatus.DRIVER_OK) == 0) {
            dev.writeStatus(ready | VirtioStatus.DRIVER_OK); // onDriverOk starts the dataplane
        } else {
            dp().startIoeventfd();
        }
        if (hostNotifiersOn != rings.length) {
            LOG.error("{}: the dataplane did not start; rings {} are not served", dev.name(), ringList(mask));
            for (VhostUserRing r : rings) {
                if ((mask & (1L << r.index)) != 0) {
                    dev.queue(r.index).disable();
                }
            }
            runningMask = 0;
            return;
        }
        running = true;
        announceUsedEntries(mask);
        if (LOG.isDebugEnabled()) {
            LOG.debug("{}: rings {} started", dev.name(), ringList(mask));
        }
        events.ringsStarted(ringList(mask));
    }

    /**
     * A ring's first start on a connection, with used entries in it, gets one
     * call. A back-end that died between publishing used entries and
     * signalling its call descriptor left them unannounced; a driver with
     * nothing else in flight submits nothing more, so this back-end would
     * complete nothing and never signal — the guest waits for an interrupt
     * forever. One spurious interrupt is harmless (virtio 1.2 §2.7.10 allows
     * them); a fresh ring (used index 0) gets none, and a restart on the same
     * connection none either: this back-end signalled what it published.
     */
    private void announceUsedEntries(long mask) {
        for (VhostUserRing r : rings) {
            long bit = 1L << r.index;
            if ((mask & bit) != 0 && (startedOnConnection & bit) == 0 && r.hasCall()) {
                startedOnConnection |= bit;
                if ((usedAtStart & bit) != 0) {
                    r.signalCall();
                }
            }
        }
    }

    /**
     * Why a ring of {@code n} entries at these front-end addresses cannot be
     * used — a part outside every region or spanning two — or null.
     */
    static String ringOutsideMemory(MemoryTable mem, int n, long descUaddr, long availUaddr, long usedUaddr) {
        String bad = mem.uaddrToGpa(descUaddr, VirtioRing.descTableSize(n)) < 0 ? "descriptor table"
                : mem.uaddrToGpa(availUaddr, VirtioRing.availSize(n)) < 0 ? "avail ring"
                : mem.uaddrToGpa(usedUaddr, VirtioRing.usedSize(n)) < 0 ? "used ring" : null;
        return bad == null ? null : String.format("the %s of %d entries (desc 0x%x avail 0x%x used 0x%x) is not inside "
                + "one region of the memory table %s", bad, n, descUaddr, availUaddr, usedUaddr, mem);
    }

    /** Configures and enables the ring's queue; false (with a device error) if its addresses are not in RAM. */
    private boolean mapRing(VhostUserRing r, GuestMemory gm) {
        VirtQueue vq = dev.queue(r.index);
        int n = r.num;
        String bad = ringOutsideMemory(mem, n, r.descUaddr, r.availUaddr, r.usedUaddr);
        if (bad != null) {
            dev.virtioError("vhost-user ring " + r.index + ": " + bad);
            return false;
        }
        long desc = mem.uaddrToGpa(r.descUaddr, VirtioRing.descTableSize(n));
        long avail = mem.uaddrToGpa(r.availUaddr, VirtioRing.availSize(n));
        long used = mem.uaddrToGpa(r.usedUaddr, VirtioRing.usedSize(n));
        vq.setSize(n);
        vq.setDescAddr(desc);
        vq.setAvailAddr(avail);
        vq.setUsedAddr(used);
        vq.setLastAvailIdx(r.base);
        if (!vq.enable()) {
            return false; // the queue logged why and broke the device
        }
        int usedIdx = gm.readU16(used + VirtioRing.USED_IDX);
        vq.setUsedIdx(usedIdx); // libvhost-user resumes at used->idx too
        usedAtStart = usedIdx != 0 ? usedAtStart | (1L << r.index) : usedAtStart & ~(1L << r.index);
        if ((ackedFeatures & F_LOG_ALL) != 0) {
            if (log == null) {
                LOG.warn("{}: VHOST_F_LOG_ALL without SET_LOG_BASE: ring {}'s writes are not logged", dev.name(),
                        r.index);
            } else {
                vq.setDirtyLog(log, r.logUsed ? r.logGuestAddr : -1);
            }
        }
        if (inflight != null) {
            InflightRegion region = inflight.queue(r.index, n);
            if (region == null) {
                LOG.warn("{}: ring {} of {} entries does not fit {}; its requests are not tracked", dev.name(),
                        r.index, n, inflight);
            } else {
                vq.setInflight(region);
            }
        }
        return true;
    }

    /** The dataplane's stop path; remembers where each ring stopped. */
    private void stopDataplane() {
        long mask = runningMask;
        dp().stopIoeventfd();
        AioWait.pollWhile(home, this::anyInUse);
        for (VhostUserRing r : rings) {
            if ((mask & (1L << r.index)) != 0) {
                VirtQueue vq = dev.queue(r.index);
                r.base = vq.lastAvailIdx();
                vq.disable();
            }
        }
        running = false;
        runningMask = 0;
        if (LOG.isDebugEnabled()) {
            LOG.debug("{}: rings {} stopped", dev.name(), ringList(mask));
        }
        events.ringsStopped(ringList(mask));
    }

    private boolean anyInUse() {
        for (int q = 0; q < rings.length; q++) {
            if (dev.queue(q).inUse() > 0) {
                return true;
            }
        }
        return false;
    }

    private static List<Integer> ringList(long mask) {
        List<Integer> l = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            if ((mask & (1L << i)) != 0) {
                l.add(i);
            }
        }
        return l;
    }

    // ------------------------------------------------------------------ reset and disconnect

    /** RESET_OWNER / RESET_DEVICE: every ring stopped and forgotten, the device reset; memory stays. */
    void resetDevice(String why) {
        stopIfRunning();
        if (dev.status() != 0) {
            dev.resetNow();
        }
        for (VhostUserRing r : rings) {
            r.reset();
        }
        ackedFeatures = 0;
        featuresSet = false;
        LOG.debug("{}: {}: rings and features forgotten", dev.name(), why);
    }

    /**
     * The front-end went away: the rings stop (drained, every completion
     * pushed), the device is reset, every ring descriptor closed and the
     * device drops the memory table (the caller unmaps it). Never throws.
     */
    void disconnect() {
        try {
            stopIfRunning();
        } catch (RuntimeException e) {
            LOG.error("{}: stopping the rings at disconnect failed", dev.name(), e);
        }
        try {
            if (dev.status() != 0) {
                dev.resetNow();
            }
        } catch (RuntimeException e) {
            LOG.error("{}: device reset at disconnect failed", dev.name(), e);
        }
        for (VhostUserRing r : rings) {
            r.reset();
        }
        try {
            dev.setMemory(null);
        } catch (RuntimeException e) {
            LOG.error("{}: dropping the memory table failed", dev.name(), e);
        }
        ackedFeatures = 0;
        featuresSet = false;
        runningMask = 0;
        startedOnConnection = 0;
        usedAtStart = 0;
        running = false;
        if (inflight != null) {
            inflight.close(); // the front-end keeps its copy for the next back-end
            inflight = null;
        }
        if (log != null) {
            log.close();
            log = null;
        }
    }

    /** Releases the idle notifiers too; after {@link #disconnect()}. */
    void close() {
        for (VhostUserRing r : rings) {
            r.close();
        }
    }

    // ------------------------------------------------------------------ NotifierBus (the dataplane's calls)

    /**
     * A running ring's kick descriptor becomes the queue's host notifier; a
     * queue whose ring does not run gets an idle eventfd nobody signals. The
     * kick descriptor stays the ring's (closed when replaced or stopped).
     */
    @Override
    public void setHostNotifierEnabled(int q, boolean enabled) {
        VhostUserRing r = rings[q];
        VirtQueue vq = dev.queue(q);
        if (enabled) {
            boolean serve = (runningMask & (1L << q)) != 0 && r.kick != null;
            vq.setHostNotifier(serve ? r.kick : r.idle());
            hostNotifiersOn++;
        } else {
            vq.setHostNotifier(null);
            hostNotifiersOn--;
        }
    }

    /** The call descriptors are the guest notifiers; nothing to wire (the front-end owns the other end). */
    @Override
    public void setGuestNotifiers(boolean assign) {
        guestNotifiers = assign;
    }

    // ------------------------------------------------------------------ the device's notifications (any thread)

    /** A used-buffer notification: the ring's call descriptor. */
    void signalCall(int q) {
        rings[q].signalCall();
    }

    /** The device broke: every ring's error descriptor. */
    void signalErr() {
        for (VhostUserRing r : rings) {
            r.signalErr();
        }
    }

    // ------------------------------------------------------------------ diagnostics

    /** The front-end's features (SET_FEATURES), for a dump. */
    long features() {
        return ackedFeatures;
    }

    boolean featuresSet() {
        return featuresSet;
    }

    boolean guestNotifiersAssigned() {
        return guestNotifiers;
    }

    void describeRings(StringBuilder sb) {
        for (VhostUserRing r : rings) {
            sb.append("  ").append(r.describe()).append('\n');
        }
    }
}
