package io.vblk.vhost;

import static io.vblk.vhost.VhostUserProtocol.ADDR_SIZE;
import static io.vblk.vhost.VhostUserProtocol.CONFIG_HEADER_SIZE;
import static io.vblk.vhost.VhostUserProtocol.F_LOG_ALL;
import static io.vblk.vhost.VhostUserProtocol.F_PROTOCOL_FEATURES;
import static io.vblk.vhost.VhostUserProtocol.FLAG_REPLY;
import static io.vblk.vhost.VhostUserProtocol.MAX_CONFIG_SIZE;
import static io.vblk.vhost.VhostUserProtocol.MAX_TABLE_REGIONS;
import static io.vblk.vhost.VhostUserProtocol.MEMORY_HEADER_SIZE;
import static io.vblk.vhost.VhostUserProtocol.MEM_REG_SIZE;
import static io.vblk.vhost.VhostUserProtocol.REGION_SIZE;
import static io.vblk.vhost.VhostUserProtocol.STATE_SIZE;
import static io.vblk.vhost.VhostUserProtocol.U64_SIZE;
import static io.vblk.vhost.VhostUserProtocol.VERSION;
import static io.vblk.vhost.VhostUserProtocol.VRING_IDX_MASK;
import static io.vblk.vhost.VhostUserProtocol.VRING_NOFD_MASK;
import static io.vblk.vhost.VhostUserProtocol.pf;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioWait;
import io.vblk.aio.EventNotifier;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.NotifierBus;
import io.vblk.virtio.VirtQueue;
import io.vblk.virtio.VirtioBus;
import io.vblk.virtio.VirtioDevice;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioStatus;
import io.vblk.virtio.blk.IoeventfdOps;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The back-end end of a vhost-user connection for one virtio device:
 * libvhost-user's {@code VuDev} — message processing
 * ({@code vu_process_message}), per-ring state ({@code VuVirtq}: size,
 * addresses, base, kick/call/err descriptors, started, enabled) and the
 * memory table ({@code VuDevRegion}) — put in front of the same
 * {@link VirtioDevice}, virtqueues and dataplane ({@link IoeventfdOps}) that
 * serve the in-process virtio-pci device.
 *
 * <h2>The transport role</h2>
 * It is the device's {@link VirtioBus} and the dataplane's
 * {@link NotifierBus}, as {@code VirtioPciTransport} is in-process: a ring's
 * SET_VRING_KICK descriptor becomes its queue's host notifier (served by the
 * queue's IOThread, exactly like an ioeventfd), its SET_VRING_CALL
 * descriptor its guest notifier (signalled from the IOThread, exactly like
 * an irqfd), SET_VRING_ERR is signalled when bad guest input breaks the
 * device.
 *
 * <h2>Rings and the dataplane</h2>
 * A ring runs when it is started (it has a kick descriptor; GET_VRING_BASE
 * stops it) and enabled (SET_VRING_ENABLE, or always when
 * VHOST_USER_F_PROTOCOL_FEATURES was not negotiated), the front-end's
 * features were set and a memory table exists. The dataplane starts and
 * stops all queues of a device together, so every change to the set of
 * running rings, to a running ring's configuration or to the memory table
 * goes through its ordinary stop path — handlers detached, backend drained,
 * every completion pushed to the used ring and signalled on the call
 * descriptor — and, if rings remain, its start path with the new set.
 * GET_VRING_BASE therefore answers only once nothing popped from that ring
 * is outstanding. Queues whose rings do not run keep a disabled
 * {@link VirtQueue} and an idle notifier.
 *
 * <p>The virtio status machine is driven on the front-end's behalf: when
 * rings first start, the device is reset if it held other features, then
 * given the features of SET_FEATURES, FEATURES_OK and DRIVER_OK — which
 * starts the dataplane through {@code onDriverOk}, as a driver's write does.
 * A disconnect stops everything, resets the device and unmaps the memory.
 *
 * <h2>Refusals</h2>
 * Every message is answered or refused per the protocol and logged: a
 * request that has a reply always gets one (zeroed or empty when refused,
 * which front-ends report as an error), a NEED_REPLY request gets a u64
 * ack (0 success, 1 failure), descriptors of a refused message are closed.
 * Nothing a front-end sends throws out of {@link #process}.
 *
 * <p>Threads: {@link #process} and {@link #disconnect} run in the device's
 * home context (the back-end's main loop); the {@link VirtioBus} calls come
 * from any thread.
 */
public final class VhostUserDevice implements VirtioBus, NotifierBus, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserDevice.class);

    /** Protocol features offered: MQ, REPLY_ACK, BACKEND_REQ, CONFIG, RESET_DEVICE, CONFIGURE_MEM_SLOTS. */
    public static final long OFFERED_PROTOCOL_FEATURES = pf(VhostUserProtocol.PF_MQ)
            | pf(VhostUserProtocol.PF_REPLY_ACK) | pf(VhostUserProtocol.PF_BACKEND_REQ)
            | pf(VhostUserProtocol.PF_CONFIG) | pf(VhostUserProtocol.PF_RESET_DEVICE)
            | pf(VhostUserProtocol.PF_CONFIGURE_MEM_SLOTS);
    /** GET_MAX_MEM_SLOTS: how many regions ADD_MEM_REG may build up. */
    public static final int MAX_MEM_SLOTS = 32;

    private final VirtioDevice dev;
    private IoeventfdOps dataplane;
    private final AioContext home;
    private final Ring[] rings;
    private final long offeredFeatures;
    private final MemoryTable mem = new MemoryTable();
    private volatile VhostUserEvents events = VhostUserEvents.NONE;

    // connection state: home thread only
    private long ackedFeatures;
    private boolean featuresSet;
    private long protocolFeatures;
    private boolean owner;
    private UnixSocket backendChannel;
    private boolean running;
    /** Rings the dataplane serves (while running) or is about to serve (while starting). */
    private long runningMask;
    private int hostNotifiersOn;
    private volatile boolean guestNotifiers;
    private long messages;
    private long refusals;

    /** One ring: libvhost-user's {@code VuVirtq} minus what the {@link VirtQueue} keeps. */
    private static final class Ring {
        final int index;
        final int maxSize;
        int num;
        long descUaddr;
        long usedUaddr;
        long availUaddr;
        boolean addrSet;
        int base;
        EventNotifier kick;
        boolean started;
        boolean enabled;
        EventNotifier idle;
        final Object callLock = new Object();
        EventNotifier call; // guarded by callLock
        EventNotifier err;  // guarded by callLock

        Ring(int index, int maxSize) {
            this.index = index;
            this.maxSize = maxSize;
        }

        void signalCall() {
            synchronized (callLock) {
                if (call != null) {
                    call.set();
                }
            }
        }

        void signalErr() {
            synchronized (callLock) {
                if (err != null) {
                    err.set();
                }
            }
        }

        void setCall(EventNotifier n) {
            EventNotifier old;
            synchronized (callLock) {
                old = call;
                call = n;
            }
            if (old != null) {
                old.close();
            }
        }

        void setErr(EventNotifier n) {
            EventNotifier old;
            synchronized (callLock) {
                old = err;
                err = n;
            }
            if (old != null) {
                old.close();
            }
        }

        void setKick(EventNotifier n) {
            if (kick != null) {
                kick.close();
            }
            kick = n;
        }

        EventNotifier idle() {
            if (idle == null) {
                idle = new EventNotifier();
            }
            return idle;
        }

        /** Forgets everything the front-end set (the descriptors are closed). */
        void reset() {
            num = 0;
            descUaddr = 0;
            usedUaddr = 0;
            availUaddr = 0;
            addrSet = false;
            base = 0;
            started = false;
            enabled = false;
            setKick(null);
            setCall(null);
            setErr(null);
        }

        String describe() {
            return String.format("ring %d: num=%d base=%d %s%s kick=%s call=%s", index, num, base,
                    started ? "started" : "stopped", enabled ? " enabled" : "", kick == null ? "-" : kick.fd(),
                    call == null ? "-" : call.fd());
        }
    }

    /** A request the back-end will not carry out: logged, answered with a failure. */
    private static final class Refused extends RuntimeException {
        private static final long serialVersionUID = 1L;

        Refused(String why) {
            super(why, null, false, false);
        }
    }

    /**
     * Puts {@code dev} behind vhost-user: plugs this object in as its bus.
     * Then build the dataplane with this object as its {@link NotifierBus} and
     * hand it over with {@link #setDataplane}.
     */
    public VhostUserDevice(VirtioDevice dev) {
        this.dev = dev;
        this.home = dev.homeContext();
        this.rings = new Ring[dev.numQueues()];
        for (int i = 0; i < rings.length; i++) {
            rings[i] = new Ring(i, dev.queue(i).maxSize());
        }
        this.offeredFeatures = dev.deviceFeatures() | F_PROTOCOL_FEATURES;
        dev.plug(this);
    }

    /** The dataplane that serves the rings (built with this object as its {@link NotifierBus}); once. */
    public void setDataplane(IoeventfdOps ops) {
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

    public void setEvents(VhostUserEvents e) {
        events = e == null ? VhostUserEvents.NONE : e;
    }

    public VirtioDevice device() {
        return dev;
    }

    /** The features GET_FEATURES answers: the device's plus VHOST_USER_F_PROTOCOL_FEATURES. */
    public long offeredFeatures() {
        return offeredFeatures;
    }

    public boolean isRunning() {
        return running;
    }

    public long messages() {
        return messages;
    }

    public long refusals() {
        return refusals;
    }

    private void checkHome() {
        if (!home.inHomeThread()) {
            throw new IllegalStateException("vhost-user messages are processed in " + home.name());
        }
    }

    // ------------------------------------------------------------------ message processing

    /**
     * Processes one front-end message and returns the reply to send, or null.
     * Never throws for anything the front-end sent; descriptors not taken by a
     * handler are closed. Home thread only.
     */
    public VhostUserMsg process(VhostUserMsg m) {
        checkHome();
        messages++;
        if (LOG.isDebugEnabled()) {
            LOG.debug("{}: <- {}", dev.name(), m);
        }
        try {
            if (m.isReply()) {
                throw new Refused("the REPLY flag is set on a request");
            }
            if (m.version() != VERSION) {
                throw new Refused("protocol version " + m.version() + " (only version 1 exists)");
            }
            if (m.fdsTruncated()) {
                throw new Refused("the kernel dropped descriptors: more than " + UnixSocket.MAX_FDS
                        + " came with the message");
            }
            VhostUserMsg reply = dispatch(m);
            if (reply == null && m.needReply()) {
                reply = VhostUserMsg.ofU64(m.request(), VERSION | FLAG_REPLY, 0);
            }
            return reply;
        } catch (Refused | VhostUserException e) {
            refusals++;
            LOG.warn("{}: {} refused: {}", dev.name(), m.name(), e.getMessage());
            events.refused(m.name(), e.getMessage());
            return failureReply(m);
        } catch (RuntimeException e) {
            refusals++;
            LOG.error("{}: {} failed", dev.name(), m.name(), e);
            events.refused(m.name(), e.toString());
            return failureReply(m);
        } finally {
            m.closeFds();
        }
    }

    private static VhostUserMsg failureReply(VhostUserMsg m) {
        if (VhostUserProtocol.hasReply(m.request())) {
            // An empty payload: the front-end sees a reply of the wrong size and reports the request as failed.
            return VhostUserMsg.of(m.request(), VERSION | FLAG_REPLY);
        }
        if (m.needReply()) {
            return VhostUserMsg.ofU64(m.request(), VERSION | FLAG_REPLY, 1);
        }
        return null;
    }

    private static VhostUserMsg replyU64(VhostUserMsg m, long v) {
        return VhostUserMsg.ofU64(m.request(), VERSION | FLAG_REPLY, v);
    }

    private static void expectSize(VhostUserMsg m, int size) {
        if (m.size() != size) {
            throw new Refused("payload of " + m.size() + " bytes, expected " + size);
        }
    }

    private static void expectFds(VhostUserMsg m, int n) {
        if (m.fdCount() != n) {
            throw new Refused(m.fdCount() + " descriptors, expected " + n);
        }
    }

    private Ring ring(long index) {
        if (index < 0 || index >= rings.length) {
            throw new Refused("ring " + index + " does not exist (the device has " + rings.length + ")");
        }
        return rings[(int) index];
    }

    private boolean protocolFeaturesNegotiated() {
        return (ackedFeatures & F_PROTOCOL_FEATURES) != 0;
    }

    private VhostUserMsg dispatch(VhostUserMsg m) {
        switch (m.request()) {
            case VhostUserProtocol.GET_FEATURES:
                return replyU64(m, offeredFeatures);
            case VhostUserProtocol.SET_FEATURES:
                setFeatures(m);
                return null;
            case VhostUserProtocol.SET_OWNER:
                owner = true;
                return null;
            case VhostUserProtocol.RESET_OWNER:
            case VhostUserProtocol.RESET_DEVICE:
                resetDevice(m.name());
                return null;
            case VhostUserProtocol.GET_PROTOCOL_FEATURES:
                return replyU64(m, OFFERED_PROTOCOL_FEATURES);
            case VhostUserProtocol.SET_PROTOCOL_FEATURES:
                setProtocolFeatures(m);
                return null;
            case VhostUserProtocol.GET_QUEUE_NUM:
                return replyU64(m, rings.length);
            case VhostUserProtocol.GET_MAX_MEM_SLOTS:
                return replyU64(m, MAX_MEM_SLOTS);
            case VhostUserProtocol.SET_MEM_TABLE:
                setMemTable(m);
                return null;
            case VhostUserProtocol.ADD_MEM_REG:
                addMemReg(m);
                return null;
            case VhostUserProtocol.REM_MEM_REG:
                remMemReg(m);
                return null;
            case VhostUserProtocol.SET_VRING_NUM:
                setVringNum(m);
                return null;
            case VhostUserProtocol.SET_VRING_ADDR:
                setVringAddr(m);
                return null;
            case VhostUserProtocol.SET_VRING_BASE:
                setVringBase(m);
                return null;
            case VhostUserProtocol.GET_VRING_BASE:
                return getVringBase(m);
            case VhostUserProtocol.SET_VRING_KICK:
                setVringKick(m);
                return null;
            case VhostUserProtocol.SET_VRING_CALL:
            case VhostUserProtocol.SET_VRING_ERR:
                setVringCallOrErr(m);
                return null;
            case VhostUserProtocol.SET_VRING_ENABLE:
                setVringEnable(m);
                return null;
            case VhostUserProtocol.GET_CONFIG:
                return getConfig(m);
            case VhostUserProtocol.SET_CONFIG:
                setConfig(m);
                return null;
            case VhostUserProtocol.SET_BACKEND_REQ_FD:
                setBackendReqFd(m);
                return null;
            case VhostUserProtocol.SET_LOG_BASE:
            case VhostUserProtocol.SET_LOG_FD:
                throw new Refused("dirty logging is not offered (no VHOST_USER_PROTOCOL_F_LOG_SHMFD)");
            case VhostUserProtocol.GET_INFLIGHT_FD:
            case VhostUserProtocol.SET_INFLIGHT_FD:
                throw new Refused("inflight tracking is not offered (no VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD)");
            case VhostUserProtocol.SET_STATUS:
            case VhostUserProtocol.GET_STATUS:
                throw new Refused("device status messages are not offered (no VHOST_USER_PROTOCOL_F_STATUS)");
            case VhostUserProtocol.VRING_KICK:
                throw new Refused("in-band notifications are not offered (no "
                        + "VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS)");
            default:
                throw new Refused(m.request() > 0 && m.request() <= VhostUserProtocol.GET_STATUS
                        ? "not supported by a vhost-user-blk back-end" : "unknown request");
        }
    }

    // ------------------------------------------------------------------ features and ownership

    private void setFeatures(VhostUserMsg m) {
        expectSize(m, U64_SIZE);
        long f = m.u64();
        long unknown = f & ~offeredFeatures;
        if (unknown != 0) {
            throw new Refused(String.format("features 0x%x were not offered (offered 0x%x)", unknown,
                    offeredFeatures));
        }
        if (featuresSet && f == ackedFeatures) {
            return;
        }
        stopIfRunning();
        ackedFeatures = f;
        featuresSet = true;
        LOG.debug("{}: front-end features 0x{}", dev.name(), Long.toHexString(f));
        reconcile();
    }

    private void setProtocolFeatures(VhostUserMsg m) {
        expectSize(m, U64_SIZE);
        long f = m.u64();
        long unknown = f & ~OFFERED_PROTOCOL_FEATURES;
        if (unknown != 0) {
            LOG.warn("{}: SET_PROTOCOL_FEATURES names {} that were not offered; ignoring them", dev.name(),
                    VhostUserProtocol.describeProtocolFeatures(unknown));
        }
        protocolFeatures = f & OFFERED_PROTOCOL_FEATURES;
        LOG.debug("{}: protocol features {}", dev.name(), VhostUserProtocol.describeProtocolFeatures(protocolFeatures));
    }

    public long protocolFeatures() {
        return protocolFeatures;
    }

    private void setBackendReqFd(VhostUserMsg m) {
        if (m.size() != 0 && m.size() != U64_SIZE) { // QEMU sends no payload, some front-ends a u64
            throw new Refused("payload of " + m.size() + " bytes, expected none");
        }
        expectFds(m, 1);
        if (backendChannel != null) {
            backendChannel.close();
        }
        backendChannel = UnixSocket.adopt(m.takeFd(0), dev.name() + "-backend-channel");
    }

    /** RESET_OWNER / RESET_DEVICE: every ring stopped and forgotten, the device reset; memory stays. */
    private void resetDevice(String why) {
        stopIfRunning();
        if (dev.status() != 0) {
            dev.resetNow();
        }
        for (Ring r : rings) {
            r.reset();
        }
        ackedFeatures = 0;
        featuresSet = false;
        LOG.debug("{}: {}: rings and features forgotten", dev.name(), why);
    }

    // ------------------------------------------------------------------ memory

    private void setMemTable(VhostUserMsg m) {
        if (m.size() < MEMORY_HEADER_SIZE) {
            throw new Refused("payload of " + m.size() + " bytes, shorter than the table header");
        }
        int n = m.u32(0);
        if (n < 1 || n > MAX_TABLE_REGIONS) {
            throw new Refused(n + " regions (1.." + MAX_TABLE_REGIONS + " allowed)");
        }
        expectSize(m, MEMORY_HEADER_SIZE + REGION_SIZE * n);
        expectFds(m, n);
        List<MemoryTable.Region> fresh = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                int o = MEMORY_HEADER_SIZE + REGION_SIZE * i;
                fresh.add(MemoryTable.map(m.u64(o), m.u64(o + 8), m.u64(o + 16), m.u64(o + 24), m.takeFd(i)));
            }
            MemoryTable check = new MemoryTable(); // refuses the first overlap; the mappings stay in 'fresh'
            for (MemoryTable.Region r : fresh) {
                check.add(r);
            }
        } catch (RuntimeException e) {
            MemoryTable.unmap(fresh);
            throw e;
        }
        stopIfRunning();
        List<MemoryTable.Region> old = mem.clear();
        for (MemoryTable.Region r : fresh) {
            mem.add(r);
        }
        applyMemory();
        MemoryTable.unmap(old);
        LOG.debug("{}: memory table {}", dev.name(), mem);
        reconcile();
    }

    private MemoryTable.Region readRegion(VhostUserMsg m, int fd) {
        return MemoryTable.map(m.u64(8), m.u64(16), m.u64(24), m.u64(32), fd);
    }

    private void addMemReg(VhostUserMsg m) {
        expectSize(m, MEM_REG_SIZE);
        expectFds(m, 1);
        if (mem.size() >= MAX_MEM_SLOTS) {
            throw new Refused("all " + MAX_MEM_SLOTS + " memory slots are in use");
        }
        MemoryTable.Region r = readRegion(m, m.takeFd(0));
        MemoryTable.Region o = mem.overlapping(r);
        if (o != null) {
            r.ram().close();
            throw new Refused("region " + r + " overlaps " + o);
        }
        stopIfRunning();
        mem.add(r);
        applyMemory();
        LOG.debug("{}: added memory region {}", dev.name(), r);
        reconcile();
    }

    private void remMemReg(VhostUserMsg m) {
        expectSize(m, MEM_REG_SIZE);
        long gpa = m.u64(8);
        long size = m.u64(16);
        boolean known = false;
        for (MemoryTable.Region o : mem.regions()) {
            known |= o.sameAs(gpa, size);
        }
        if (!known) {
            throw new Refused(String.format("no memory region at gpa 0x%x of size 0x%x", gpa, size));
        }
        stopIfRunning();
        MemoryTable.Region r = mem.remove(gpa, size);
        applyMemory();
        r.ram().close();
        LOG.debug("{}: removed memory region {}", dev.name(), r);
        reconcile();
    }

    /** Hands the current table to the device and its queues (all stopped). */
    private void applyMemory() {
        GuestMemory gm = mem.guestMemory();
        dev.setMemory(gm);
    }

    // ------------------------------------------------------------------ rings

    private void setVringNum(VhostUserMsg m) {
        expectSize(m, STATE_SIZE);
        Ring r = ring(m.u32(0) & 0xffff_ffffL);
        int num = m.u32(4);
        if (num < 1 || num > r.maxSize || Integer.bitCount(num) != 1) {
            throw new Refused("ring " + r.index + ": size " + num + " is not a power of two in 1.." + r.maxSize);
        }
        stopIfServing(r);
        r.num = num;
        reconcile();
    }

    private void setVringAddr(VhostUserMsg m) {
        expectSize(m, ADDR_SIZE);
        Ring r = ring(m.u32(0) & 0xffff_ffffL);
        stopIfServing(r);
        r.descUaddr = m.u64(8);
        r.usedUaddr = m.u64(16);
        r.availUaddr = m.u64(24);
        r.addrSet = true;
        reconcile();
    }

    private void setVringBase(VhostUserMsg m) {
        expectSize(m, STATE_SIZE);
        Ring r = ring(m.u32(0) & 0xffff_ffffL);
        long num = m.u32(4) & 0xffff_ffffL;
        if (num > 0xffff) {
            throw new Refused("ring " + r.index + ": base " + num + " does not fit a split ring's 16-bit index");
        }
        stopIfServing(r);
        r.base = (int) num;
        reconcile();
    }

    /**
     * Stops the ring: the dataplane's stop path (handlers detached, drained,
     * every completion pushed and signalled), then answers the next avail index
     * to read. libvhost-user closes the kick and call descriptors here; so do we.
     */
    private VhostUserMsg getVringBase(VhostUserMsg m) {
        expectSize(m, STATE_SIZE);
        Ring r = ring(m.u32(0) & 0xffff_ffffL);
        stopIfServing(r);
        r.started = false;
        r.setKick(null);
        r.setCall(null);
        LOG.debug("{}: ring {} stopped at base {}", dev.name(), r.index, r.base);
        reconcile();
        return VhostUserMsg.ofState(m.request(), VERSION | FLAG_REPLY, r.index, r.base);
    }

    private void setVringKick(VhostUserMsg m) {
        expectSize(m, U64_SIZE);
        long v = m.u64();
        Ring r = ring(v & VRING_IDX_MASK);
        if ((v & VRING_NOFD_MASK) != 0) {
            throw new Refused("ring " + r.index + ": no kick descriptor (polling mode is not supported)");
        }
        expectFds(m, 1);
        stopIfServing(r);
        r.setKick(EventNotifier.adopt(m.takeFd(0)));
        r.started = true;
        reconcile();
    }

    private void setVringCallOrErr(VhostUserMsg m) {
        expectSize(m, U64_SIZE);
        long v = m.u64();
        Ring r = ring(v & VRING_IDX_MASK);
        EventNotifier n = null;
        if ((v & VRING_NOFD_MASK) == 0) {
            expectFds(m, 1);
            n = EventNotifier.adopt(m.takeFd(0));
        }
        if (m.request() == VhostUserProtocol.SET_VRING_CALL) {
            r.setCall(n); // on the fly: the next signal uses the new descriptor
        } else {
            r.setErr(n);
        }
    }

    private void setVringEnable(VhostUserMsg m) {
        expectSize(m, STATE_SIZE);
        Ring r = ring(m.u32(0) & 0xffff_ffffL);
        int num = m.u32(4);
        if (num != 0 && num != 1) {
            throw new Refused("ring " + r.index + ": enable value " + num + " (0 or 1)");
        }
        if (!protocolFeaturesNegotiated()) {
            LOG.warn("{}: SET_VRING_ENABLE without VHOST_USER_F_PROTOCOL_FEATURES negotiated; applying it",
                    dev.name());
        }
        r.enabled = num == 1;
        reconcile();
    }

    private boolean enabledEff(Ring r) {
        return r.enabled || !protocolFeaturesNegotiated();
    }

    /** The rings that should run now; 0 while the front-end is not ready. */
    private long wantedMask() {
        if (mem.isEmpty() || !featuresSet) {
            return 0;
        }
        long mask = 0;
        for (Ring r : rings) {
            if (r.started && r.kick != null && enabledEff(r) && r.num > 0 && r.addrSet) {
                mask |= 1L << r.index;
            }
        }
        return mask;
    }

    private void stopIfServing(Ring r) {
        if (running && (runningMask & (1L << r.index)) != 0) {
            stopDataplane();
        }
    }

    private void stopIfRunning() {
        if (running) {
            stopDataplane();
        }
    }

    /** Stops or (re)starts the dataplane so that exactly the wanted rings run. */
    private void reconcile() {
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
        for (Ring r : rings) {
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
            for (Ring r : rings) {
                if ((mask & (1L << r.index)) != 0) {
                    dev.queue(r.index).disable();
                }
            }
            runningMask = 0;
            return;
        }
        running = true;
        if (LOG.isDebugEnabled()) {
            LOG.debug("{}: rings {} started", dev.name(), ringList(mask));
        }
        events.ringsStarted(ringList(mask));
    }

    /** Configures and enables the ring's queue; false (with a device error) if its addresses are not in RAM. */
    private boolean mapRing(Ring r, GuestMemory gm) {
        VirtQueue vq = dev.queue(r.index);
        int n = r.num;
        long desc = mem.uaddrToGpa(r.descUaddr, 16L * n);
        long avail = mem.uaddrToGpa(r.availUaddr, 6 + 2L * n);
        long used = mem.uaddrToGpa(r.usedUaddr, 6 + 8L * n);
        if (desc < 0 || avail < 0 || used < 0) {
            dev.virtioError(String.format("vhost-user ring %d: addresses desc 0x%x avail 0x%x used 0x%x are not in "
                    + "the memory table %s", r.index, r.descUaddr, r.availUaddr, r.usedUaddr, mem));
            return false;
        }
        vq.setSize(n);
        vq.setDescAddr(desc);
        vq.setAvailAddr(avail);
        vq.setUsedAddr(used);
        vq.setLastAvailIdx(r.base);
        if (!vq.enable()) {
            return false; // the queue logged why and broke the device
        }
        vq.setUsedIdx(gm.readU16(used + 2)); // libvhost-user resumes at used->idx too
        return true;
    }

    /** The dataplane's stop path; remembers where each ring stopped. */
    private void stopDataplane() {
        long mask = runningMask;
        dp().stopIoeventfd();
        AioWait.pollWhile(home, this::anyInUse);
        for (Ring r : rings) {
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

    // ------------------------------------------------------------------ configuration space

    private VhostUserMsg getConfig(VhostUserMsg m) {
        if (m.size() < CONFIG_HEADER_SIZE) {
            throw new Refused("payload of " + m.size() + " bytes, shorter than the config header");
        }
        int offset = m.u32(0);
        int size = m.u32(4);
        if (offset < 0 || size < 0 || size > MAX_CONFIG_SIZE || offset + size > MAX_CONFIG_SIZE) {
            throw new Refused("config range offset " + offset + " size " + size + " outside 0.." + MAX_CONFIG_SIZE);
        }
        expectSize(m, CONFIG_HEADER_SIZE + size);
        byte[] b = new byte[CONFIG_HEADER_SIZE + size];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(0, offset);
        bb.putInt(4, size);
        bb.putInt(8, m.u32(8));
        for (int i = 0; i < size; i++) {
            b[CONFIG_HEADER_SIZE + i] = (byte) dev.readConfig(offset + i, 1);
        }
        return new VhostUserMsg(m.request(), VERSION | FLAG_REPLY, b, null);
    }

    private void setConfig(VhostUserMsg m) {
        if (m.size() < CONFIG_HEADER_SIZE) {
            throw new Refused("payload of " + m.size() + " bytes, shorter than the config header");
        }
        int offset = m.u32(0);
        int size = m.u32(4);
        if (offset < 0 || size < 0 || size > MAX_CONFIG_SIZE || offset + size > dev.configSize()) {
            throw new Refused("config range offset " + offset + " size " + size + " outside the device's "
                    + dev.configSize() + " bytes");
        }
        expectSize(m, CONFIG_HEADER_SIZE + size);
        byte[] data = m.bytes(CONFIG_HEADER_SIZE, size);
        for (int i = 0; i < size; i++) {
            dev.writeConfig(offset + i, 1, data[i] & 0xff);
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
        Ring r = rings[q];
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

    // ------------------------------------------------------------------ VirtioBus (the device's calls)

    @Override
    public void raiseQueueInterrupt(int queueIndex) {
        rings[queueIndex].signalCall();
    }

    @Override
    public void signalGuestNotifier(int queueIndex) {
        rings[queueIndex].signalCall();
    }

    /** Bad guest input broke the device: every ring's error descriptor is signalled (SET_VRING_ERR). */
    @Override
    public void raiseConfigInterrupt() {
        if (dev.isBroken()) {
            for (Ring r : rings) {
                r.signalErr();
            }
            return;
        }
        long need = pf(VhostUserProtocol.PF_BACKEND_REQ) | pf(VhostUserProtocol.PF_CONFIG);
        if ((protocolFeatures & need) == need) {
            home.bhScheduleOneshot(dev.name() + "-config-change", this::sendConfigChange);
        }
    }

    private void sendConfigChange() {
        UnixSocket c = backendChannel;
        if (c == null) {
            return;
        }
        try {
            VhostUserMsg.of(VhostUserProtocol.BACKEND_CONFIG_CHANGE_MSG, VERSION).write(c);
        } catch (VhostUserException e) {
            LOG.warn("{}: config change notification not sent: {}", dev.name(), e.getMessage());
        }
    }

    @Override
    public void deviceReset() {
        // vhost-user keeps no per-reset transport state: the rings are the front-end's to set again
    }

    // ------------------------------------------------------------------ connection end

    /**
     * The front-end went away: stop the rings (drained, every completion
     * pushed, acknowledged writes on the backend), reset the device, close
     * every descriptor and unmap the memory, so the next front-end starts from
     * scratch. Home thread only; never throws.
     */
    public void disconnect() {
        checkHome();
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
        for (Ring r : rings) {
            r.reset();
        }
        try {
            dev.setMemory(null);
        } catch (RuntimeException e) {
            LOG.error("{}: dropping the memory table failed", dev.name(), e);
        }
        mem.close();
        if (backendChannel != null) {
            backendChannel.close();
            backendChannel = null;
        }
        ackedFeatures = 0;
        featuresSet = false;
        protocolFeatures = 0;
        owner = false;
        runningMask = 0;
        running = false;
    }

    /** Releases the idle notifiers; call after {@link #disconnect()}. */
    @Override
    public void close() {
        for (Ring r : rings) {
            r.reset();
            if (r.idle != null) {
                r.idle.close();
                r.idle = null;
            }
        }
        mem.close();
    }

    /** The connection's state for a watchdog dump. */
    public String describe() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("vhost-user %s: %s, owner=%s features=0x%x%s protocol=%s memory=%s messages=%d "
                + "refused=%d guest_notifiers=%s%n", dev.name(), running ? "running" : "stopped", owner,
                ackedFeatures, featuresSet ? "" : "(not set)",
                VhostUserProtocol.describeProtocolFeatures(protocolFeatures), mem, messages, refusals,
                guestNotifiers ? "assigned" : "released"));
        for (Ring r : rings) {
            sb.append("  ").append(r.describe()).append('\n');
        }
        return sb.toString();
    }

    @Override
    public String toString() {
        return "VhostUserDevice(" + dev.name() + ")";
    }
}
