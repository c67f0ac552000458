package io.vblk.vhost;

import static io.vblk.vhost.MessageHandler.answers;
import static io.vblk.vhost.MessageHandler.config;
import static io.vblk.vhost.MessageHandler.does;
import static io.vblk.vhost.MessageHandler.exactly;
import static io.vblk.vhost.MessageHandler.fds;
import static io.vblk.vhost.MessageHandler.ignored;
import static io.vblk.vhost.MessageHandler.memoryTable;
import static io.vblk.vhost.MessageHandler.noneOrU64;
import static io.vblk.vhost.MessageHandler.onePerRegion;
import static io.vblk.vhost.MessageHandler.oneUnlessNoFd;
import static io.vblk.vhost.MessageHandler.refuses;
import static io.vblk.vhost.MessageHandler.unused;
import static io.vblk.vhost.VhostUserProtocol.ADDR_SIZE;
import static io.vblk.vhost.VhostUserProtocol.CONFIG_HEADER_SIZE;
import static io.vblk.vhost.VhostUserProtocol.MAX_CONFIG_SIZE;
import static io.vblk.vhost.VhostUserProtocol.MEM_REG_SIZE;
import static io.vblk.vhost.VhostUserProtocol.STATE_SIZE;
import static io.vblk.vhost.VhostUserProtocol.U64_SIZE;
import static io.vblk.vhost.VhostUserProtocol.VERSION;
import static io.vblk.vhost.VhostUserProtocol.VRING_IDX_MASK;
import static io.vblk.vhost.VhostUserProtocol.VRING_NOFD_MASK;
import static io.vblk.vhost.VhostUserProtocol.pf;

import io.vblk.aio.AioContext;
import io.vblk.aio.EventNotifier;
import io.vblk.virtio.VirtioDevice;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Message dispatch of a vhost-user back-end: one {@link MessageHandler} per
 * request type in a table indexed by request code, built once — libvhost-user's
 * {@code vu_process_message} switch with its {@code vu_*_exec} handlers, and
 * the back-end side of QEMU's docs/interop/vhost-user.rst. Each handler
 * declares the payload size and descriptor count of its type, checked
 * before it runs; its body then decodes the payload, checks the values
 * (ring index, ring size, feature bits, config range) and hands the change
 * to the ring state ({@link VhostUserRings}) or the {@link MemoryTable}.
 * Adding a message is adding one line to {@link #buildTable()} and its body.
 *
 * <p>It also keeps the session state messages set outside the rings: the
 * negotiated protocol features, ownership and the back-end request channel
 * (SET_BACKEND_REQ_FD, used for config-change notifications) — libvhost-user's
 * {@code VuDev.protocol_features} and {@code slave_fd}.
 *
 * <h2>Refusals</h2>
 * A handler refuses by throwing {@link Refusal}; the transport
 * ({@link VhostUserConnection#answer}) turns that into the protocol's
 * failure answer and reports it here ({@link #refused}), which logs one line
 * naming the fault. Known requests this back-end does not serve and unknown
 * codes have refusing entries too, so every code finds one.
 *
 * <p>Home thread only, except {@link #configChanged} (any thread).
 */
final class VhostUserDispatcher {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserDispatcher.class);

    /** Indexed by request code; every known code has an entry. */
    private static final MessageHandler[] HANDLERS = buildTable();
    private static final MessageHandler UNKNOWN = refuses(0, "unknown request");
    /**
     * Requests that change the session: refused before SET_OWNER. QEMU sends
     * only the GET_* family, SET_PROTOCOL_FEATURES and SET_BACKEND_REQ_FD
     * before it ({@code vhost_user_backend_init}, then {@code vhost_set_owner}).
     */
    private static final boolean[] NEEDS_OWNER = needsOwner();

    private final VirtioDevice dev;
    private final AioContext home;
    private final VhostUserRings rings;
    private final MemoryTable mem;
    private final long offeredFeatures;
    private volatile VhostUserEvents events = VhostUserEvents.NONE;

    // session state: home thread only
    private long protocolFeatures;
    private boolean owner;
    private UnixSocket backendChannel;
    private EventNotifier logFd;
    private long messages;
    private long refusals;

    VhostUserDispatcher(VirtioDevice dev, VhostUserRings rings, MemoryTable mem, long offeredFeatures) {
        this.dev = dev;
        this.home = dev.homeContext();
        this.rings = rings;
        this.mem = mem;
        this.offeredFeatures = offeredFeatures;
    }

    // ------------------------------------------------------------------ the table

    private static MessageHandler[] buildTable() {
        MessageHandler[] t = new MessageHandler[VhostUserProtocol.GET_STATUS + 1];
        // features and ownership
        put(t, answers(VhostUserProtocol.GET_FEATURES, ignored(), unused(), (d, m) -> m.replyU64(d.offeredFeatures)));
        put(t, does(VhostUserProtocol.SET_FEATURES, exactly(U64_SIZE), unused(), VhostUserDispatcher::setFeatures));
        put(t, does(VhostUserProtocol.SET_OWNER, ignored(), unused(), (d, m) -> d.owner = true));
        put(t, does(VhostUserProtocol.RESET_OWNER, ignored(), unused(), (d, m) -> d.rings.resetDevice(m.name())));
        put(t, does(VhostUserProtocol.RESET_DEVICE, ignored(), unused(), (d, m) -> d.rings.resetDevice(m.name())));
        put(t, answers(VhostUserProtocol.GET_PROTOCOL_FEATURES, ignored(), unused(),
                (d, m) -> m.replyU64(VhostUserDevice.OFFERED_PROTOCOL_FEATURES)));
        put(t, does(VhostUserProtocol.SET_PROTOCOL_FEATURES, exactly(U64_SIZE), unused(),
                VhostUserDispatcher::setProtocolFeatures));
        put(t, answers(VhostUserProtocol.GET_QUEUE_NUM, ignored(), unused(), (d, m) -> m.replyU64(d.rings.count())));
        put(t, does(VhostUserProtocol.SET_BACKEND_REQ_FD, noneOrU64(), fds(1), VhostUserDispatcher::setBackendReqFd));
        // memory
        put(t, answers(VhostUserProtocol.GET_MAX_MEM_SLOTS, ignored(), unused(),
                (d, m) -> m.replyU64(VhostUserDevice.MAX_MEM_SLOTS)));
        put(t, does(VhostUserProtocol.SET_MEM_TABLE, memoryTable(), onePerRegion(), VhostUserDispatcher::setMemTable));
        put(t, does(VhostUserProtocol.ADD_MEM_REG, exactly(MEM_REG_SIZE), fds(1), VhostUserDispatcher::addMemReg));
        put(t, does(VhostUserProtocol.REM_MEM_REG, exactly(MEM_REG_SIZE), unused(), VhostUserDispatcher::remMemReg));
        // rings
        put(t, does(VhostUserProtocol.SET_VRING_NUM, exactly(STATE_SIZE), unused(), VhostUserDispatcher::setVringNum));
        put(t, does(VhostUserProtocol.SET_VRING_ADDR, exactly(ADDR_SIZE), unused(), VhostUserDispatcher::setVringAddr));
        put(t, does(VhostUserProtocol.SET_VRING_BASE, exactly(STATE_SIZE), unused(),
                VhostUserDispatcher::setVringBase));
        put(t, answers(VhostUserProtocol.GET_VRING_BASE, exactly(STATE_SIZE), unused(),
                VhostUserDispatcher::getVringBase));
        put(t, does(VhostUserProtocol.SET_VRING_KICK, exactly(U64_SIZE), oneUnlessNoFd(),
                VhostUserDispatcher::setVringKick));
        put(t, does(VhostUserProtocol.SET_VRING_CALL, exactly(U64_SIZE), oneUnlessNoFd(),
                VhostUserDispatcher::setVringCall));
        put(t, does(VhostUserProtocol.SET_VRING_ERR, exactly(U64_SIZE), oneUnlessNoFd(),
                VhostUserDispatcher::setVringErr));
        put(t, does(VhostUserProtocol.SET_VRING_ENABLE, exactly(STATE_SIZE), unused(),
                VhostUserDispatcher::setVringEnable));
        // configuration space
        put(t, answers(VhostUserProtocol.GET_CONFIG, config(), unused(), VhostUserDispatcher::getConfig));
        put(t, does(VhostUserProtocol.SET_CONFIG, config(), unused(), VhostUserDispatcher::setConfig));
        // features not offered: their messages are refused
        // dirty logging (live migration)
        put(t, answers(VhostUserProtocol.SET_LOG_BASE, exactly(VhostUserLog.MSG_SIZE), fds(1),
                VhostUserDispatcher::setLogBase));
        put(t, does(VhostUserProtocol.SET_LOG_FD, ignored(), fds(1), VhostUserDispatcher::setLogFd));
        // inflight tracking (reconnect after a back-end crash)
        put(t, answers(VhostUserProtocol.GET_INFLIGHT_FD, exactly(InflightTable.MSG_SIZE), unused(),
                VhostUserDispatcher::getInflightFd));
        put(t, does(VhostUserProtocol.SET_INFLIGHT_FD, exactly(InflightTable.MSG_SIZE), fds(1),
                VhostUserDispatcher::setInflightFd));
        String noStatus = "device status messages are not offered (no VHOST_USER_PROTOCOL_F_STATUS)";
        put(t, refuses(VhostUserProtocol.SET_STATUS, noStatus));
        put(t, refuses(VhostUserProtocol.GET_STATUS, noStatus));
        put(t, refuses(VhostUserProtocol.VRING_KICK,
                "in-band notifications are not offered (no VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS)"));
        // the rest of the protocol (net, crypto, postcopy, IOTLB, ...)
        for (int code = 1; code < t.length; code++) {
            if (t[code] == null) {
                t[code] = refuses(code, "not supported by a vhost-user-blk back-end");
            }
        }
        return t;
    }

    private static boolean[] needsOwner() {
        boolean[] b = new boolean[VhostUserProtocol.GET_STATUS + 1];
        for (int code : new int[] {VhostUserProtocol.SET_FEATURES, VhostUserProtocol.SET_MEM_TABLE,
            VhostUserProtocol.ADD_MEM_REG, VhostUserProtocol.REM_MEM_REG, VhostUserProtocol.SET_LOG_BASE,
            VhostUserProtocol.SET_LOG_FD, VhostUserProtocol.SET_VRING_NUM, VhostUserProtocol.SET_VRING_ADDR,
            VhostUserProtocol.SET_VRING_BASE, VhostUserProtocol.GET_VRING_BASE, VhostUserProtocol.SET_VRING_KICK,
            VhostUserProtocol.SET_VRING_CALL, VhostUserProtocol.SET_VRING_ERR, VhostUserProtocol.SET_VRING_ENABLE,
            VhostUserProtocol.SET_CONFIG, VhostUserProtocol.GET_INFLIGHT_FD, VhostUserProtocol.SET_INFLIGHT_FD,
            VhostUserProtocol.RESET_DEVICE, VhostUserProtocol.RESET_OWNER}) {
            b[code] = true;
        }
        return b;
    }

    private static void put(MessageHandler[] t, MessageHandler h) {
        if (t[h.request] != null) {
            throw new IllegalStateException("two handlers for " + h);
        }
        if (h.replies != VhostUserProtocol.hasReply(h.request)) {
            // the transport answers a refusal by VhostUserProtocol.hasReply: the table must agree with it
            throw new IllegalStateException(h + (h.replies ? " answers, but the protocol gives it no reply"
                    : " does not answer, but the protocol gives it a reply"));
        }
        t[h.request] = h;
    }

    private static MessageHandler handler(int request) {
        return request > 0 && request < HANDLERS.length ? HANDLERS[request] : UNKNOWN;
    }

    // ------------------------------------------------------------------ entry points (the transport's calls)

    /** Every message the transport reads, answered or not. */
    void received(VhostUserMsg m) {
        messages++;
        if (LOG.isDebugEnabled()) {
            LOG.debug("{}: <- {}", dev.name(), m);
        }
    }

    /**
     * Runs the message's handler: its payload size and descriptor count are
     * checked, then its body. Returns the reply, or null when the request has
     * none of its own; throws {@link Refusal} (or {@link VhostUserException}
     * for a region that cannot be mapped) to refuse it.
     */
    VhostUserMsg dispatch(VhostUserMsg m) {
        int r = m.request();
        if (!owner && r > 0 && r < NEEDS_OWNER.length && NEEDS_OWNER[r]) {
            throw new Refusal("sent before SET_OWNER (the session has no owner yet)");
        }
        return handler(r).run(this, m);
    }

    /** A refused message: counted, one log line naming the fault, reported. */
    void refused(VhostUserMsg m, RuntimeException e) {
        refusals++;
        if (e instanceof Refusal || e instanceof VhostUserException) {
            LOG.warn("{}: {} refused: {}", dev.name(), m.name(), e.getMessage());
            events.refused(m.name(), e.getMessage());
        } else {
            LOG.error("{}: {} failed", dev.name(), m.name(), e);
            events.refused(m.name(), e.toString());
        }
    }

    void setEvents(VhostUserEvents e) {
        events = e;
    }

    long messages() {
        return messages;
    }

    long refusals() {
        return refusals;
    }

    long offeredFeatures() {
        return offeredFeatures;
    }

    long protocolFeatures() {
        return protocolFeatures;
    }

    boolean owner() {
        return owner;
    }

    // ------------------------------------------------------------------ features and the back-end channel

    private void setFeatures(VhostUserMsg m) {
        long f = m.u64();
        long unknown = f & ~offeredFeatures;
        if (unknown != 0) {
            throw new Refusal(String.format("features 0x%x were not offered (offered 0x%x)", unknown,
                    offeredFeatures));
        }
        rings.setFeatures(f);
    }

    private void setProtocolFeatures(VhostUserMsg m) {
        long f = m.u64();
        long offered = VhostUserDevice.OFFERED_PROTOCOL_FEATURES;
        long unknown = f & ~offered;
        if (unknown != 0) {
            LOG.warn("{}: SET_PROTOCOL_FEATURES names {} that were not offered; ignoring them", dev.name(),
                    VhostUserProtocol.describeProtocolFeatures(unknown));
        }
        protocolFeatures = f & offered;
        LOG.debug("{}: protocol features {}", dev.name(), VhostUserProtocol.describeProtocolFeatures(protocolFeatures));
    }

    private void setBackendReqFd(VhostUserMsg m) {
        PeerFd.requireSocket(m.peekFd(0), "the back-end channel descriptor");
        if (backendChannel != null) {
            backendChannel.close();
        }
        backendChannel = UnixSocket.adopt(m.takeFd(0), dev.name() + "-backend-channel");
    }

    /**
     * The device's configuration changed: tell the front-end on the back-end
     * channel (VHOST_USER_BACKEND_CONFIG_CHANGE_MSG) when it negotiated that.
     * Any thread; the message is sent from the home context.
     */
    void configChanged() {
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
            VhostUserMsg.of(VhostUserProtocol.BACKEND_CONFIG_CHANGE_MSG, VERSION).writeNow(c); // never waits
        } catch (VhostUserException e) {
            LOG.warn("{}: config change notification not sent: {}", dev.name(), e.getMessage());
        }
    }

    /** The front-end went away: protocol features, ownership and the back-end channel are forgotten. */
    void disconnect() {
        if (logFd != null) {
            logFd.close();
            logFd = null;
        }
        if (backendChannel != null) {
            backendChannel.close();
            backendChannel = null;
        }
        protocolFeatures = 0;
        owner = false;
    }

    // ------------------------------------------------------------------ memory

    private void setMemTable(VhostUserMsg m) {
        List<MemoryTable.Region> fresh = MemoryTable.mapTable(m);
        rings.stopIfRunning();
        List<MemoryTable.Region> old = mem.replace(fresh);
        rings.applyMemory();
        MemoryTable.unmap(old);
        LOG.debug("{}: memory table {}", dev.name(), mem);
        rings.reconcile();
    }

    private void addMemReg(VhostUserMsg m) {
        if (mem.size() >= VhostUserDevice.MAX_MEM_SLOTS) {
            throw new Refusal("all " + VhostUserDevice.MAX_MEM_SLOTS + " memory slots are in use");
        }
        MemoryTable.Region r = MemoryTable.mapRegion(m, m.takeFd(0));
        MemoryTable.Region o = mem.overlapping(r);
        if (o != null) {
            r.ram().close();
            throw new Refusal("region " + r + " overlaps " + o);
        }
        rings.stopIfRunning();
        mem.add(r);
        rings.applyMemory();
        LOG.debug("{}: added memory region {}", dev.name(), r);
        rings.reconcile();
    }

    private void remMemReg(VhostUserMsg m) {
        long gpa = m.u64(8);
        long size = m.u64(16);
        if (!mem.contains(gpa, size)) {
            throw new Refusal(String.format("no memory region at gpa 0x%x of size 0x%x", gpa, size));
        }
        rings.stopIfRunning();
        MemoryTable.Region r = mem.remove(gpa, size);
        rings.applyMemory();
        r.ram().close();
        LOG.debug("{}: removed memory region {}", dev.name(), r);
        rings.reconcile();
    }

    // ------------------------------------------------------------------ rings

    /** The ring a {@code vhost_vring_state} or {@code vhost_vring_addr} payload names (u32 at 0). */
    private VhostUserRing ringOfState(VhostUserMsg m) {
        return rings.ring(m.u32(0) & 0xffff_ffffL);
    }

    /** The ring a SET_VRING_KICK/CALL/ERR payload names (bits 0..7 of the u64). */
    private VhostUserRing ringOfFile(VhostUserMsg m) {
        return rings.ring(m.u64() & VRING_IDX_MASK);
    }

    /**
     * The descriptor of a SET_VRING_CALL/ERR, or null when the payload says none
     * is passed; refused unless it is an eventfd, which is made non-blocking.
     */
    private static EventNotifier fileOf(VhostUserMsg m, VhostUserRing r, String what) {
        if ((m.u64() & VRING_NOFD_MASK) != 0) {
            return null;
        }
        PeerFd.requireEventfd(m.peekFd(0), "ring " + r.index + " " + what + " descriptor");
        return EventNotifier.adopt(m.takeFd(0));
    }

    private void setVringNum(VhostUserMsg m) {
        VhostUserRing r = ringOfState(m);
        int num = m.u32(4);
        if (num < 1 || num > r.maxSize || Integer.bitCount(num) != 1) {
            throw new Refusal("ring " + r.index + ": size " + num + " is not a power of two in 1.." + r.maxSize);
        }
        rings.setNum(r, num);
    }

    /**
     * Checks the addresses before the ring may use them: the flags
     * (VHOST_VRING_F_LOG only), the alignment virtio requires, and — when a
     * memory table and a size are known — that each of the three rings lies in
     * one region (libvhost-user's {@code map_ring}); otherwise the start checks
     * them again.
     */
    private void setVringAddr(VhostUserMsg m) {
        VhostUserRing r = ringOfState(m);
        int flags = m.u32(4);
        long desc = m.u64(8);
        long used = m.u64(16);
        long avail = m.u64(24);
        long log = m.u64(32);
        if ((flags & ~VRING_F_LOG) != 0) {
            throw new Refusal(String.format("ring %d: unknown address flags 0x%x", r.index, flags));
        }
        if ((desc & 15) != 0 || (avail & 1) != 0 || (used & 3) != 0) {
            throw new Refusal(String.format("ring %d: misaligned addresses desc 0x%x avail 0x%x used 0x%x (need "
                    + "16, 2 and 4)", r.index, desc, avail, used));
        }
        if (!mem.isEmpty() && r.num > 0) {
            String bad = VhostUserRings.ringOutsideMemory(mem, r.num, desc, avail, used);
            if (bad != null) {
                throw new Refusal("ring " + r.index + ": " + bad);
            }
        }
        rings.setAddr(r, desc, used, avail, (flags & VRING_F_LOG) != 0, log);
    }

    /** VHOST_VRING_F_LOG in SET_VRING_ADDR's flags: log writes to the used ring. */
    static final int VRING_F_LOG = 1;

    private void setVringBase(VhostUserMsg m) {
        VhostUserRing r = ringOfState(m);
        long num = m.u32(4) & 0xffff_ffffL;
        if (num > 0xffff) {
            throw new Refusal("ring " + r.index + ": base " + num + " does not fit a split ring's 16-bit index");
        }
        rings.setBase(r, (int) num);
    }

    /** Answers only after the ring stopped: every request popped from it was pushed and signalled. */
    private VhostUserMsg getVringBase(VhostUserMsg m) {
        VhostUserRing r = ringOfState(m);
        int base = rings.stop(r);
        return m.replyState(r.index, base);
    }

    private void setVringKick(VhostUserMsg m) {
        VhostUserRing r = ringOfFile(m);
        if ((m.u64() & VRING_NOFD_MASK) != 0) {
            throw new Refusal("ring " + r.index + ": no kick descriptor (polling mode is not supported)");
        }
        PeerFd.requireEventfd(m.peekFd(0), "ring " + r.index + " kick descriptor");
        rings.setKick(r, () -> m.takeFd(0));
    }

    private void setVringCall(VhostUserMsg m) {
        VhostUserRing r = ringOfFile(m); // before the descriptor is taken: a refused one is closed with the message
        rings.setCall(r, fileOf(m, r, "call"));
    }

    private void setVringErr(VhostUserMsg m) {
        VhostUserRing r = ringOfFile(m);
        rings.setErr(r, fileOf(m, r, "error"));
    }

    private void setVringEnable(VhostUserMsg m) {
        VhostUserRing r = ringOfState(m);
        int num = m.u32(4);
        if (num != 0 && num != 1) {
            throw new Refusal("ring " + r.index + ": enable value " + num + " (0 or 1)");
        }
        rings.setEnabled(r, num == 1);
    }

    // ------------------------------------------------------------------ dirty log

    /**
     * SET_LOG_BASE: maps the front-end's bitmap (size checked against the
     * file first); the rings log into it while VHOST_F_LOG_ALL is negotiated.
     * Answered with a u64 0, as libvhost-user does (QEMU waits for a reply).
     */
    private VhostUserMsg setLogBase(VhostUserMsg m) {
        rings.setLog(VhostUserLog.map(m.takeFd(0), m.u64(0), m.u64(8)));
        return m.replyU64(0);
    }

    /** SET_LOG_FD: an eventfd kept for the session (libvhost-user signals it; QEMU's vhost-user does not use it). */
    private void setLogFd(VhostUserMsg m) {
        PeerFd.requireEventfd(m.peekFd(0), "the log descriptor");
        EventNotifier n = EventNotifier.adopt(m.takeFd(0));
        if (logFd != null) {
            logFd.close();
        }
        logFd = n;
    }

    // ------------------------------------------------------------------ inflight region

    /**
     * GET_INFLIGHT_FD: allocates a zeroed region for the queues and size the
     * front-end names and returns it (with its size) as a memfd the front-end
     * keeps and hands to every later back-end. The device uses it at once.
     */
    private VhostUserMsg getInflightFd(VhostUserMsg m) {
        int numQueues = m.payload().getShort(16) & 0xffff;
        int queueSize = m.payload().getShort(18) & 0xffff;
        InflightTable.checkShape(numQueues, queueSize, rings.count());
        InflightTable t = InflightTable.allocate(numQueues, queueSize);
        rings.setInflight(t);
        byte[] b = new byte[InflightTable.MSG_SIZE];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putLong(0, t.mmapSize);
        bb.putLong(8, 0);
        bb.putShort(16, (short) numQueues);
        bb.putShort(18, (short) queueSize);
        return m.replyWithFd(b, t.map.fd()); // the table keeps the descriptor; the reply only lends it
    }

    /** SET_INFLIGHT_FD: the region a front-end kept (perhaps across our crash), checked and mapped. */
    private void setInflightFd(VhostUserMsg m) {
        long mmapSize = m.u64(0);
        long mmapOffset = m.u64(8);
        int numQueues = m.payload().getShort(16) & 0xffff;
        int queueSize = m.payload().getShort(18) & 0xffff;
        InflightTable.checkShape(numQueues, queueSize, rings.count());
        rings.setInflight(InflightTable.map(m.takeFd(0), mmapSize, mmapOffset, numQueues, queueSize));
    }

    // ------------------------------------------------------------------ configuration space

    private VhostUserMsg getConfig(VhostUserMsg m) {
        int offset = m.u32(0);
        int size = m.u32(4);
        if (offset < 0 || (long) offset + size > MAX_CONFIG_SIZE) {
            throw new Refusal("config range offset " + offset + " size " + size + " outside 0.." + MAX_CONFIG_SIZE);
        }
        byte[] b = new byte[CONFIG_HEADER_SIZE + size];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(0, offset);
        bb.putInt(4, size);
        bb.putInt(8, m.u32(8));
        for (int i = 0; i < size; i++) {
            b[CONFIG_HEADER_SIZE + i] = (byte) dev.readConfig(offset + i, 1);
        }
        return m.reply(b);
    }

    private void setConfig(VhostUserMsg m) {
        int offset = m.u32(0);
        int size = m.u32(4);
        if (offset < 0 || (long) offset + size > dev.configSize()) {
            throw new Refusal("config range offset " + offset + " size " + size + " outside the device's "
                    + dev.configSize() + " bytes");
        }
        byte[] data = m.bytes(CONFIG_HEADER_SIZE, size);
        for (int i = 0; i < size; i++) {
            dev.writeConfig(offset + i, 1, data[i] & 0xff);
        }
    }
}
