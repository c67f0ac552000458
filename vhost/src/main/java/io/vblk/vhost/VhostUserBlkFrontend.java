package io.vblk.vhost;

import static io.vblk.vhost.VhostUserProtocol.pf;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioHandler;
import io.vblk.aio.Errno;
import io.vblk.aio.EventNotifier;
import io.vblk.aio.LibC;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.RamRegion;
import io.vblk.virtio.VirtQueue;
import io.vblk.virtio.VirtioDevice;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioPciRegs;
import io.vblk.virtio.VirtioPciTransport;
import io.vblk.virtio.VirtioStatus;
import io.vblk.virtio.blk.VirtioBlk;
import io.vblk.virtio.blk.VirtioBlkAbi;
import io.vblk.virtio.VirtioRing;

import java.lang.invoke.VarHandle;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A virtio-blk device whose queues are served by a vhost-user back-end in
 * another process (or another event loop): QEMU's {@code VHostUserBlk}
 * (hw/block/vhost-user-blk.c) with the parts of hw/virtio/vhost.c it uses
 * ({@code vhost_dev_start}, {@code vhost_dev_stop}). Plugged into an
 * ordinary {@link VirtioPciTransport}, so the firmware and the Linux-like
 * driver see the same PCI function as for the in-process device.
 *
 * <p><b>Connect</b> ({@link #connect}): GET_FEATURES, GET_PROTOCOL_FEATURES,
 * SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS, SET_OWNER,
 * GET_CONFIG. The guest is offered the back-end's features restricted to
 * what this front-end passes through, and reads the back-end's config
 * space.
 *
 * <p><b>Start</b> (DRIVER_OK, resume): SET_FEATURES; the memory table (one
 * ADD_MEM_REG per region with CONFIGURE_MEM_SLOTS, else SET_MEM_TABLE), once
 * per connection; guest notifiers assigned; then for every queue the driver
 * enabled: host notifier switched to an ioeventfd (so the vCPU's notify
 * write signals the back-end directly, as KVM's ioeventfd does),
 * SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR (host virtual addresses),
 * SET_VRING_KICK, SET_VRING_CALL and, with protocol features,
 * SET_VRING_ENABLE. The call descriptor is the queue's MSI-X irqfd when the
 * driver gave it a vector, so the back-end interrupts the vCPU directly; a
 * queue without one (SeaBIOS polls) gets an eventfd the main loop relays to
 * the transport's ordinary interrupt path.
 *
 * <p><b>Stop</b> (reset, pause): SET_VRING_ENABLE(0) for every ring, then
 * GET_VRING_BASE for each — the back-end answers only when everything it
 * popped was answered and signalled — whose index the queue keeps for the
 * next start; host notifiers back to direct mode, guest notifiers released.
 *
 * <p><b>Back-end crash</b>: the socket is watched between requests; when the
 * back-end closes it the front-end waits (bounded, {@link #setReconnectTimeout})
 * for the socket to come back, renegotiates, hands the new back-end the
 * inflight region it got with GET_INFLIGHT_FD at the first start, and restarts
 * the rings from {@code used->idx}; the back-end resubmits what was in flight.
 * QEMU's {@code vhost_user_blk_event} with {@code reconnect=}. Past the bound
 * the device is marked NEEDS_RESET. The back-end channel (BACKEND_REQ) carries
 * config changes (a resize); dirty logging can be switched on
 * ({@link #setDirtyLogging}).
 *
 * <p>Everything runs in the home context (the machine's main loop), with
 * blocking requests bounded by the client's reply timeout.
 */
public final class VhostUserBlkFrontend extends VirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserBlkFrontend.class);

    /** Protocol features this front-end uses when offered. */
    public static final long WANTED_PROTOCOL_FEATURES = pf(VhostUserProtocol.PF_MQ)
            | pf(VhostUserProtocol.PF_REPLY_ACK) | pf(VhostUserProtocol.PF_CONFIG)
            | pf(VhostUserProtocol.PF_CONFIGURE_MEM_SLOTS) | pf(VhostUserProtocol.PF_BACKEND_REQ)
            | pf(VhostUserProtocol.PF_LOG_SHMFD) | pf(VhostUserProtocol.PF_INFLIGHT_SHMFD);
    /** How long a front-end waits for a back-end that went away to come back before the device fails. */
    public static final Duration DEFAULT_RECONNECT_TIMEOUT = Duration.ofSeconds(30);
    private static final long RECONNECT_RETRY_NS = 50_000_000L;
    /** virtio-blk feature bits passed through to the guest (QEMU's user_feature_bits for vhost-user-blk). */
    public static final long PASSTHROUGH_FEATURES = VirtioBlkAbi.F_SIZE_MAX | VirtioBlkAbi.F_SEG_MAX
            | VirtioBlkAbi.F_GEOMETRY | VirtioBlkAbi.F_RO | VirtioBlkAbi.F_BLK_SIZE | VirtioBlkAbi.F_FLUSH | VirtioBlkAbi.F_TOPOLOGY
            | VirtioBlkAbi.F_CONFIG_WCE | VirtioBlkAbi.F_MQ | VirtioBlkAbi.F_DISCARD | VirtioBlkAbi.F_WRITE_ZEROES
            | VirtioFeatures.INDIRECT_DESC | VirtioFeatures.EVENT_IDX | VirtioFeatures.VERSION_1;
    /** Bytes of the virtio-blk config space read from the back-end (QEMU 7.2's struct virtio_blk_config). */
    public static final int CONFIG_SIZE = VirtioBlkAbi.CONFIG_SIZE;
    public static final Duration DEFAULT_REPLY_TIMEOUT = Duration.ofSeconds(30);
    /** poll(2)'s POLLRDHUP: the peer shut its end down. */
    private static final int POLLRDHUP = 0x2000;


    /** The connection; replaced when the back-end comes back after a crash ({@link #backendGone}). */
    private VhostUserClient client;
    private final Path socket;
    private final Duration replyTimeout;
    /** Whether the back-end offered VHOST_USER_F_PROTOCOL_FEATURES (then it is acked, and rings need ENABLE). */
    private final boolean protocolFeaturesOn;
    private final long protocolFeatures;
    private final int backendQueues;
    private VirtioPciTransport transport;
    private boolean started;
    private boolean memorySent;
    private final EventNotifier[] relays;
    private final AioHandler[] relayHandlers;
    private long starts;
    private long stops;
    /** Our end of the back-end channel (SET_BACKEND_REQ_FD), or null; its handler in the home context. */
    private UnixSocket backendChannel;
    private MessageReader backendChannelReader;
    private AioHandler backendChannelHandler;
    private long configChanges;
    /** Whether the back-end offered VHOST_F_LOG_ALL (then, with LOG_SHMFD, it can log for a migration). */
    private final boolean logAllOffered;
    /** The dirty bitmap shared with the back-end while logging (SET_LOG_BASE), or null. */
    private RamRegion dirtyLog;
    private boolean logging;
    /** The inflight region's descriptor (GET_INFLIGHT_FD) kept across back-end restarts, or -1; its answer. */
    private int inflightFd = -1;
    private byte[] inflightMsg;
    private AioHandler connectionHandler;
    private io.vblk.aio.AioTimer reconnectTimer;
    private long goneSince;
    /** Between a back-end's death and the rings running on its successor. */
    private boolean reconnecting;
    private long reconnectDeadline;
    private long longestStallNs;
    private long reconnects;
    private Duration reconnectTimeout = DEFAULT_RECONNECT_TIMEOUT;

    private VhostUserBlkFrontend(String name, AioContext home, GuestMemory mem, VhostUserClient client,
            long features, boolean protocolFeaturesOn, long protocolFeatures, int backendQueues, int numQueues,
            int queueSize, byte[] config, long backendFeatures) {
        super(name, ID_BLOCK, features, CONFIG_SIZE, home, mem);
        this.client = client;
        this.socket = client.path();
        this.replyTimeout = client.replyTimeout();
        this.protocolFeaturesOn = protocolFeaturesOn;
        this.protocolFeatures = protocolFeatures;
        this.backendQueues = backendQueues;
        for (int i = 0; i < numQueues; i++) {
            addQueue(queueSize);
        }
        for (int i = 0; i < config.length; i++) {
            setConfigU8(i, config[i] & 0xff);
        }
        setConfigU16(34, numQueues); // num_queues: what this front-end exposes (QEMU does the same)
        this.relays = new EventNotifier[numQueues];
        this.relayHandlers = new AioHandler[numQueues];
        this.logAllOffered = (backendFeatures & VhostUserProtocol.F_LOG_ALL) != 0;
    }

    /**
     * Connects to the back-end at {@code socket} and negotiates (QEMU's
     * {@code vhost_user_blk_connect} and {@code vhost_dev_init}). Guest RAM
     * must be shared memory (memfd regions): the back-end maps it.
     *
     * @param maxQueues queues to expose, at most what the back-end has
     * @throws VhostUserException naming the socket and the step that failed
     */
    public static VhostUserBlkFrontend connect(String name, Path socket, int maxQueues, int queueSize,
            AioContext home, GuestMemory mem, Duration replyTimeout) {
        for (RamRegion r : mem.regions()) {
            if (r.fd() < 0) {
                throw new VhostUserException(name + ": guest RAM " + r + " is not shared memory; a vhost-user back-end "
                        + "cannot map it (QEMU needs memory-backend-memfd,share=on for the same reason)");
            }
        }
        VhostUserClient c = VhostUserClient.connect(socket, replyTimeout);
        try {
            long features = c.getU64(VhostUserProtocol.GET_FEATURES);
            if ((features & VirtioFeatures.VERSION_1) == 0) {
                throw new VhostUserException("vhost-user back-end at " + socket + " does not offer VIRTIO_F_VERSION_1");
            }
            long pfs = 0;
            if ((features & VhostUserProtocol.F_PROTOCOL_FEATURES) != 0) {
                pfs = c.getU64(VhostUserProtocol.GET_PROTOCOL_FEATURES) & WANTED_PROTOCOL_FEATURES;
                c.setU64(VhostUserProtocol.SET_PROTOCOL_FEATURES, pfs);
                c.setReplyAck((pfs & pf(VhostUserProtocol.PF_REPLY_ACK)) != 0);
            }
            if ((pfs & pf(VhostUserProtocol.PF_CONFIG)) == 0) {
                throw new VhostUserException("vhost-user back-end at " + socket + " does not offer "
                        + "VHOST_USER_PROTOCOL_F_CONFIG; a vhost-user-blk front-end needs its config space");
            }
            int queues = 1;
            if ((pfs & pf(VhostUserProtocol.PF_MQ)) != 0) {
                queues = (int) c.getU64(VhostUserProtocol.GET_QUEUE_NUM);
            }
            if (queues < 1) {
                throw new VhostUserException("vhost-user back-end at " + socket + " has no queues");
            }
            if ((pfs & pf(VhostUserProtocol.PF_CONFIGURE_MEM_SLOTS)) != 0) {
                long slots = c.getU64(VhostUserProtocol.GET_MAX_MEM_SLOTS);
                if (slots < mem.regions().size()) {
                    throw new VhostUserException("vhost-user back-end at " + socket + " takes " + slots
                            + " memory regions, guest RAM has " + mem.regions().size());
                }
            }
            UnixSocket channel = null;
            if ((pfs & pf(VhostUserProtocol.PF_BACKEND_REQ)) != 0) {
                UnixSocket[] pair = UnixSocket.pair();
                try {
                    c.setU64(VhostUserProtocol.SET_BACKEND_REQ_FD, 0, pair[1].fd());
                    channel = pair[0];
                } catch (RuntimeException e) {
                    pair[0].close();
                    throw e;
                } finally {
                    pair[1].closeDescriptorOnly(); // the back-end has its copy: no shutdown
                }
            }
            c.request(VhostUserProtocol.SET_OWNER);
            byte[] config = c.getConfig(0, CONFIG_SIZE);
            int n = Math.min(maxQueues, queues);
            if (n < maxQueues) {
                LOG.info("{}: the back-end has {} queue(s); exposing {} instead of {}", name, queues, n, maxQueues);
            }
            long offered = (features & PASSTHROUGH_FEATURES) | VirtioFeatures.VERSION_1;
            if (n == 1) {
                offered &= ~VirtioBlkAbi.F_MQ; // none with one queue
            }
            LOG.info("{}: connected to vhost-user back-end {} (features 0x{}, protocol {}, {} queue(s))", name, socket,
                    Long.toHexString(features), VhostUserProtocol.describeProtocolFeatures(pfs), queues);
            VhostUserBlkFrontend f = new VhostUserBlkFrontend(name, home, mem, c, offered,
                    (features & VhostUserProtocol.F_PROTOCOL_FEATURES) != 0, pfs, queues, n, queueSize, config, features);
            if (channel != null) {
                f.watchBackendChannel(channel);
            }
            f.inHome(f::watchConnection);
            return f;
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
    }

    // ------------------------------------------------------------------ back-end crash and reconnect

    private void inHome(Runnable r) {
        if (homeContext().inHomeThread()) {
            r.run();
        } else {
            homeContext().bhScheduleOneshot(name() + "-vhost-user", r);
        }
    }

    /** How long to wait for a back-end that went away (default {@link #DEFAULT_RECONNECT_TIMEOUT}). */
    public void setReconnectTimeout(Duration d) {
        reconnectTimeout = d;
    }

    /**
     * The back-end never speaks first on the main socket: readable between
     * requests means it closed (or broke) the connection — QEMU's
     * {@code CHR_EVENT_CLOSED} for {@code vhost_user_blk_event}.
     */
    private void watchConnection() {
        VhostUserClient c = client;
        connectionHandler = homeContext().setFdHandler(new AioHandler.Builder(name() + "-vhost-user-conn",
                c.fd()).onRead(() -> {
                    if (c == client) {
                        backendGone("the back-end closed the connection");
                    }
                }));
    }

    /**
     * The back-end died: its rings are gone with it. The guest's kicks keep
     * landing in the ioeventfds and its requests wait; the front-end retries
     * the socket until the deadline, then renegotiates, hands the new
     * back-end the inflight region (which resubmits what was in flight) and
     * restarts the rings from {@code used->idx} — QEMU's
     * {@code vhost_user_blk_disconnect}/{@code _connect} with
     * {@code reconnect=}. Home context.
     */
    private void backendGone(String why) {
        if (connectionHandler != null) {
            connectionHandler.remove();
            connectionHandler = null;
        }
        closeBackendChannel();
        client.close();
        boolean wasStarted = started;
        if (started) {
            started = false;
            for (int q = 0; q < numQueues(); q++) {
                if (queue(q).hostNotifier() != null) {
                    transport.setHostNotifierEnabled(q, false);
                }
            }
            transport.setGuestNotifiers(false);
        }
        memorySent = false;
        if (!reconnecting) {
            reconnecting = true;
            goneSince = System.nanoTime();
            reconnectDeadline = goneSince + reconnectTimeout.toNanos();
        }
        LOG.warn("{}: vhost-user back-end at {} went away ({}); waiting up to {} s for it to come back{}", name(),
                socket, why, reconnectTimeout.toSeconds(), wasStarted ? " (the guest's requests wait)" : "");
        if (reconnectTimer == null) {
            reconnectTimer = homeContext().timerNew(name() + "-vhost-user-reconnect", this::tryReconnect);
        }
        reconnectTimer.modInNs(RECONNECT_RETRY_NS);
    }

    private void tryReconnect() {
        VhostUserClient c;
        try {
            c = VhostUserClient.connect(socket, replyTimeout);
        } catch (VhostUserException e) {
            if (System.nanoTime() < reconnectDeadline) {
                reconnectTimer.modInNs(RECONNECT_RETRY_NS);
                return;
            }
            LOG.error("{}: vhost-user back-end at {} did not come back within {} s: {}", name(), socket,
                    reconnectTimeout.toSeconds(), e.getMessage());
            virtioError("vhost-user back-end at " + socket + " did not come back within "
                    + reconnectTimeout.toSeconds() + " s");
            return;
        }
        try {
            renegotiate(c);
        } catch (VhostUserException e) {
            c.close();
            LOG.warn("{}: renegotiating with the restarted back-end failed: {}; retrying", name(), e.getMessage());
            if (System.nanoTime() < reconnectDeadline) {
                reconnectTimer.modInNs(RECONNECT_RETRY_NS);
            } else {
                virtioError("vhost-user back-end at " + socket + ": " + e.getMessage());
            }
            return;
        }
        if (c.isBroken()) {
            return; // gone again while restarting the rings: backendGone re-armed the retry
        }
        reconnecting = false;
        if (isBroken()) {
            return; // connected, but the rings did not start (logged): the device waits for the guest's reset
        }
        long stall = System.nanoTime() - goneSince;
        longestStallNs = Math.max(longestStallNs, stall);
        reconnects++;
        LOG.warn("{}: vhost-user back-end at {} is back after {} ms; rings restarted", name(), socket,
                stall / 1_000_000);
        announceUsedEntries();
    }

    /**
     * A back-end killed between publishing used entries and signalling its
     * call descriptor leaves them unannounced: a driver waiting for that
     * interrupt with every request completed submits nothing, so the new
     * back-end has nothing to complete and never signals either. One
     * interrupt per started queue after a reconnect closes that window; a
     * spurious one is harmless (the driver finds no new used entry).
     */
    private void announceUsedEntries() {
        if (!started) {
            return;
        }
        for (int q = 0; q < numQueues(); q++) {
            if (queue(q).isEnabled()) {
                transport.raiseQueueInterrupt(q);
            }
        }
    }

    /** The connect sequence again, on a back-end that must offer what was negotiated; then the rings restart. */
    private void renegotiate(VhostUserClient c) {
        long features = c.getU64(VhostUserProtocol.GET_FEATURES);
        long need = negotiatedFeatures() | (protocolFeaturesOn ? VhostUserProtocol.F_PROTOCOL_FEATURES : 0);
        if ((features & need) != need) {
            throw new VhostUserException(String.format("the restarted back-end offers features 0x%x, not all of "
                    + "the 0x%x in use", features, need));
        }
        if (protocolFeaturesOn) {
            long pfs = c.getU64(VhostUserProtocol.GET_PROTOCOL_FEATURES);
            if ((pfs & protocolFeatures) != protocolFeatures) {
                throw new VhostUserException("the restarted back-end lacks protocol features "
                        + VhostUserProtocol.describeProtocolFeatures(protocolFeatures & ~pfs));
            }
            c.setU64(VhostUserProtocol.SET_PROTOCOL_FEATURES, protocolFeatures);
            c.setReplyAck(hasProtocolFeature(VhostUserProtocol.PF_REPLY_ACK));
        }
        UnixSocket channel = null;
        if (hasProtocolFeature(VhostUserProtocol.PF_BACKEND_REQ)) {
            UnixSocket[] pair = UnixSocket.pair();
            try {
                c.setU64(VhostUserProtocol.SET_BACKEND_REQ_FD, 0, pair[1].fd());
                channel = pair[0];
            } catch (RuntimeException e) {
                pair[0].close();
                throw e;
            } finally {
                pair[1].closeDescriptorOnly();
            }
        }
        c.request(VhostUserProtocol.SET_OWNER);
        client = c;
        if (channel != null) {
            watchBackendChannel(channel);
        }
        watchConnection();
        if (dirtyLog != null) {
            RamRegion old = dirtyLog; // the old back-end's log: share a fresh one if logging is asked again
            dirtyLog = null;
            old.close();
            if (logging) {
                logging = false;
                setDirtyLogging(true);
            }
        }
        for (int q = 0; q < numQueues(); q++) {
            VirtQueue vq = queue(q);
            if (vq.isEnabled()) {
                // QEMU's virtio_queue_restore_last_avail_idx: the dead back-end's base is lost; used->idx is
                // where it certainly got to, and the inflight region tells the new one what is between
                vq.setLastAvailIdx(memory().readU16(vq.usedAddr() + VirtioRing.USED_IDX));
            }
        }
        startOrWait(); // if the back-end dies again meanwhile, backendGone has re-armed the retry
    }

    /** The longest time the guest's requests waited for a back-end to come back, in nanoseconds. */
    public long longestStallNanos() {
        return longestStallNs;
    }

    /** True from a back-end's death until the front-end is back on a new one (home context). */
    public boolean awaitingBackend() {
        return reconnecting;
    }

    /** Back-ends reconnected to after one went away. */
    public long reconnects() {
        return reconnects;
    }

    /**
     * GET_INFLIGHT_FD once — the region outlives back-ends; the front-end
     * keeps its descriptor, never touches its contents — and SET_INFLIGHT_FD
     * on every start (QEMU's {@code vhost_dev_get_inflight}/{@code _set_inflight}).
     */
    private void sendInflight() {
        if (!hasProtocolFeature(VhostUserProtocol.PF_INFLIGHT_SHMFD)) {
            return;
        }
        if (inflightFd < 0) {
            byte[] b = new byte[24];
            java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).putShort(16, (short) numQueues())
                    .putShort(18, (short) queue(0).size());
            VhostUserMsg r = client.requestReply(new VhostUserMsg(VhostUserProtocol.GET_INFLIGHT_FD,
                    VhostUserProtocol.VERSION, b, null));
            int fd = r.takeFd(0);
            r.closeFds();
            if (fd < 0 || r.size() != 24) {
                if (fd >= 0) {
                    io.vblk.aio.LibC.close(fd);
                }
                throw new VhostUserException(name() + ": GET_INFLIGHT_FD answered without a region");
            }
            inflightFd = fd;
            inflightMsg = new byte[24];
            System.arraycopy(r.bytes(0, 24), 0, inflightMsg, 0, 24);
        }
        client.sendWithFds(VhostUserProtocol.SET_INFLIGHT_FD, inflightMsg, inflightFd);
    }

    // ------------------------------------------------------------------ the back-end channel

    /** Serves the back-end's requests in the home context (QEMU's {@code backend_read}). */
    private void watchBackendChannel(UnixSocket channel) {
        channel.setTimeouts(DEFAULT_REPLY_TIMEOUT, DEFAULT_REPLY_TIMEOUT);
        backendChannel = channel;
        backendChannelReader = new MessageReader(channel);
        Runnable install = () -> backendChannelHandler = homeContext().setFdHandler(
                new AioHandler.Builder(name() + "-backend-channel", channel.fd()).onRead(this::backendRequest));
        if (homeContext().inHomeThread()) {
            install.run();
        } else {
            homeContext().bhScheduleOneshot(name() + "-watch-backend-channel", install);
        }
    }

    /**
     * One back-end request: CONFIG_CHANGE_MSG re-reads the config space with
     * GET_CONFIG and tells the guest (QEMU's
     * {@code vhost_user_blk_handle_config_change}: capacity and the rest);
     * others are refused. A NEED_REPLY request gets its ack.
     */
    private void backendRequest() {
        VhostUserMsg m;
        try {
            m = backendChannelReader.readAvailable(); // never waits for the rest of a message
        } catch (VhostUserException e) {
            if (!e.disconnected()) {
                LOG.warn("{}: back-end channel failed: {}", name(), e.getMessage());
            }
            closeBackendChannel();
            return;
        }
        if (m == null) {
            return;
        }
        m.closeFds();
        boolean ok = false;
        if (m.request() == VhostUserProtocol.BACKEND_CONFIG_CHANGE_MSG) {
            try {
                byte[] config = client.getConfig(0, CONFIG_SIZE);
                for (int i = 0; i < config.length; i++) {
                    if (i != 34 && i != 35) { // num_queues stays what this front-end exposes
                        setConfigU8(i, config[i] & 0xff);
                    }
                }
                configChanges++;
                LOG.info("{}: the back-end's config changed: capacity {} sectors", name(), readConfig(0, 8));
                notifyConfigChange();
                ok = true;
            } catch (VhostUserException e) {
                LOG.warn("{}: re-reading the config space after a change failed: {}", name(), e.getMessage());
            }
        } else {
            LOG.warn("{}: back-end request {} is not handled", name(), m.name());
        }
        if (m.needReply()) {
            try {
                m.ack(ok).writeNow(backendChannel);
            } catch (VhostUserException e) {
                LOG.warn("{}: back-end channel ack failed: {}", name(), e.getMessage());
            }
        }
    }

    private void closeBackendChannel() {
        if (backendChannelHandler != null) {
            backendChannelHandler.remove();
            backendChannelHandler = null;
        }
        if (backendChannel != null) {
            backendChannelReader.close();
            backendChannel.close();
            backendChannel = null;
        }
    }

    /** Config-change notifications received from the back-end. */
    public long configChanges() {
        return configChanges;
    }

    /** Binds the PCI function this device is plugged into (made by the machine right after {@link #connect}). */
    public void setTransport(VirtioPciTransport t) {
        this.transport = t;
    }

    public VhostUserClient client() {
        return client;
    }

    public int backendQueues() {
        return backendQueues;
    }

    public boolean isStarted() {
        return started;
    }

    public long starts() {
        return starts;
    }

    public long stops() {
        return stops;
    }

    private boolean hasProtocolFeature(int bit) {
        return (protocolFeatures & pf(bit)) != 0;
    }

    // ------------------------------------------------------------------ start and stop

    @Override
    protected void onDriverOk() {
        vhostStart();
    }

    /**
     * QEMU's {@code vhost_user_blk_start}: hands the enabled queues to the
     * back-end. Home context; a failure marks the device NEEDS_RESET.
     */
    public void vhostStart() {
        checkHome("start");
        if (reconnecting) {
            // the back-end is gone (a reset's DRIVER_OK while it restarts): the reconnect starts the rings
            return;
        }
        startOrWait();
    }

    /**
     * Starts the rings unless the device has nothing to start; a back-end that
     * dies meanwhile is waited for, whichever path noticed it first (the
     * connection handler may have run already, or not yet).
     */
    private void startOrWait() {
        if (started || (status() & VirtioStatus.DRIVER_OK) == 0 || isBroken()) {
            return;
        }
        try {
            startRings();
        } catch (VhostUserException e) {
            if (client.isBroken()) {
                backendGone("starting the rings: " + e.getMessage()); // it died under us: wait for it to come back
                return;
            }
            LOG.error("{}: cannot start the vhost-user rings: {}", name(), e.getMessage());
            virtioError("vhost-user back-end failed: " + e.getMessage());
        }
    }

    private void startRings() {
        long acked = negotiatedFeatures() | (protocolFeaturesOn ? VhostUserProtocol.F_PROTOCOL_FEATURES : 0)
                | (logging ? VhostUserProtocol.F_LOG_ALL : 0);
        sendInflight();
        client.setU64(VhostUserProtocol.SET_FEATURES, acked);
        if (!memorySent) {
            sendMemory();
            memorySent = true;
        }
        transport.setGuestNotifiers(true);
        started = true;
        starts++;
        for (int q = 0; q < numQueues(); q++) {
            VirtQueue vq = queue(q);
            if (!vq.isEnabled()) {
                continue;
            }
            transport.setHostNotifierEnabled(q, true);
            vq.hostNotifier().set(); // kick right away: the back-end looks at what the ring holds already
            GuestMemory mem = memory();
            int n = vq.size();
            client.setState(VhostUserProtocol.SET_VRING_NUM, q, n);
            client.setState(VhostUserProtocol.SET_VRING_BASE, q, vq.lastAvailIdx());
            sendVringAddr(q);
            client.setU64(VhostUserProtocol.SET_VRING_KICK, q, vq.hostNotifier().fd());
            client.setU64(VhostUserProtocol.SET_VRING_CALL, q, callFd(q));
        }
        if (protocolFeaturesOn) {
            for (int q = 0; q < numQueues(); q++) {
                if (queue(q).isEnabled()) {
                    client.setState(VhostUserProtocol.SET_VRING_ENABLE, q, 1);
                }
            }
        }
        LOG.debug("{}: vhost-user rings started", name());
    }

    /** SET_VRING_ADDR with host virtual addresses; while logging, VHOST_VRING_F_LOG at the used ring's address. */
    private void sendVringAddr(int q) {
        VirtQueue vq = queue(q);
        GuestMemory mem = memory();
        int n = vq.size();
        client.setVringAddr(q, logging ? 1 : 0, mem.translate(vq.descAddr(), VirtioRing.descTableSize(n)),
                mem.translate(vq.usedAddr(), VirtioRing.usedSize(n)),
                mem.translate(vq.availAddr(), VirtioRing.availSize(n)), logging ? vq.usedAddr() : 0);
    }

    /**
     * Switches the back-end's dirty logging on or off, as QEMU's
     * {@code vhost_dev_set_log} does for a live migration: the first time, a
     * bitmap covering guest RAM (one bit per 4 KiB page) is shared with
     * SET_LOG_BASE; then SET_FEATURES with or without VHOST_F_LOG_ALL and, for
     * running rings, SET_VRING_ADDR with VHOST_VRING_F_LOG. The bitmap is not
     * synced here (no migration reads it): this is what {@code vblk bench
     * --dirty-log} measures the back-end's logging cost with. Home context.
     *
     * @throws VhostUserException if the back-end cannot log (no VHOST_F_LOG_ALL or LOG_SHMFD)
     */
    public void setDirtyLogging(boolean on) {
        checkHome("dirty logging");
        if (on == logging) {
            return;
        }
        if (on && (!logAllOffered || !hasProtocolFeature(VhostUserProtocol.PF_LOG_SHMFD))) {
            throw new VhostUserException(name() + ": the vhost-user back-end cannot log dirty pages (it lacks "
                    + (logAllOffered ? "VHOST_USER_PROTOCOL_F_LOG_SHMFD" : "VHOST_F_LOG_ALL") + ")");
        }
        if (on && dirtyLog == null) {
            long end = 0;
            for (RamRegion r : memory().regions()) {
                end = Math.max(end, r.gpa() + r.size());
            }
            long bytes = ((end >>> 12) + 63) / 64 * 8;
            RamRegion log = RamRegion.memfd(name() + "-dirty-log", 0, Math.max(4096, (bytes + 4095) & ~4095L));
            byte[] b = new byte[VhostUserLog.MSG_SIZE];
            java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).putLong(0, bytes).putLong(8, 0);
            try {
                client.requestReply(new VhostUserMsg(VhostUserProtocol.SET_LOG_BASE, VhostUserProtocol.VERSION, b,
                        new int[] {log.fd()}));
            } catch (RuntimeException e) {
                log.close();
                throw e;
            }
            dirtyLog = log;
        }
        logging = on;
        if (started) {
            long acked = negotiatedFeatures() | (protocolFeaturesOn ? VhostUserProtocol.F_PROTOCOL_FEATURES : 0)
                    | (on ? VhostUserProtocol.F_LOG_ALL : 0);
            client.setU64(VhostUserProtocol.SET_FEATURES, acked);
            for (int q = 0; q < numQueues(); q++) {
                if (queue(q).isEnabled() && queue(q).hostNotifier() != null) {
                    sendVringAddr(q);
                }
            }
        }
        LOG.info("{}: dirty logging {}", name(), on ? "on" : "off");
    }

    public boolean isDirtyLogging() {
        return logging;
    }

    private void sendMemory() {
        List<RamRegion> regions = memory().regions();
        if (hasProtocolFeature(VhostUserProtocol.PF_CONFIGURE_MEM_SLOTS)) {
            for (RamRegion r : regions) {
                client.addMemReg(r.gpa(), r.size(), r.hostAddress(), 0, r.fd());
            }
            return;
        }
        int n = regions.size();
        long[] gpa = new long[n];
        long[] size = new long[n];
        long[] uaddr = new long[n];
        long[] off = new long[n];
        int[] fds = new int[n];
        for (int i = 0; i < n; i++) {
            RamRegion r = regions.get(i);
            gpa[i] = r.gpa();
            size[i] = r.size();
            uaddr[i] = r.hostAddress();
            fds[i] = r.fd();
        }
        client.setMemTable(gpa, size, uaddr, off, fds);
    }

    /**
     * The descriptor the back-end signals for queue {@code q}: the MSI-X irqfd
     * of its vector (the machine's irqchip delivers it to the vCPU), or a relay
     * eventfd the main loop turns into the transport's ordinary interrupt.
     */
    private int callFd(int q) {
        if (transport.msixEnabled()) {
            int v = transport.queueVector(q);
            if (v != VirtioPciRegs.NO_VECTOR && v < transport.msixVectors()) {
                return transport.guestNotifier(v).fd();
            }
        }
        if (relays[q] == null) {
            EventNotifier n = new EventNotifier();
            relays[q] = n;
            int queue = q;
            relayHandlers[q] = homeContext().setFdHandler(new AioHandler.Builder(name() + "-vq" + q + "-call",
                    n.fd()).onRead(() -> {
                        if (n.testAndClear()) {
                            transport.raiseQueueInterrupt(queue); // QEMU's virtio_queue_guest_notifier_read
                        }
                    }));
        }
        return relays[q].fd();
    }

    /**
     * QEMU's {@code vhost_user_blk_stop}: every ring disabled, then stopped
     * with GET_VRING_BASE, whose answer the queue keeps. Home context. A
     * pause calls {@link #awaitRingsUsed} first.
     */
    public void vhostStop() {
        checkHome("stop");
        if (!started) {
            return;
        }
        started = false;
        stops++;
        try {
            if (protocolFeaturesOn) {
                for (int q = 0; q < numQueues(); q++) {
                    if (queue(q).hostNotifier() != null) {
                        client.setState(VhostUserProtocol.SET_VRING_ENABLE, q, 0);
                    }
                }
            }
            for (int q = 0; q < numQueues(); q++) {
                VirtQueue vq = queue(q);
                if (vq.hostNotifier() == null) {
                    continue;
                }
                int base = client.getVringBase(q);
                if (vq.isEnabled()) {
                    vq.setLastAvailIdx(base);
                }
            }
        } catch (VhostUserException e) {
            if (e.disconnected()) {
                LOG.warn("{}: vhost-user back-end gone while stopping the rings: {}", name(), e.getMessage());
            } else {
                LOG.error("{}: stopping the vhost-user rings failed: {}", name(), e.getMessage());
            }
        } finally {
            for (int q = 0; q < numQueues(); q++) {
                if (queue(q).hostNotifier() != null) {
                    transport.setHostNotifierEnabled(q, false);
                }
            }
            transport.setGuestNotifiers(false);
        }
        LOG.debug("{}: vhost-user rings stopped", name());
    }

    /**
     * A pause's first step, before {@link #vhostStop}: waits, bounded by the
     * reply timeout, until each running ring's used index reaches its avail
     * index. The vCPUs are paused, so the avail index holds still, and the
     * back-end, its rings still running, finishes what it took; each ring is
     * kicked once first, as a vCPU paused between publishing a request and
     * notifying would have (a spurious kick is harmless). Home context.
     *
     * <p>Why: libvhost-user (qemu-storage-daemon 7.2) answers GET_VRING_BASE
     * at once with requests still in flight and closes its call descriptor;
     * the next such request's completion fails to signal it and the back-end
     * drops the connection ({@code vu_panic}, "Error writing eventfd"). Across
     * the reconnect the old connection's requests were then also used on the
     * new rings: the soak saw a descriptor used twice. vblk's own back-end
     * answers GET_VRING_BASE only when nothing is in flight, and QEMU's
     * {@code vm_stop} drains in-process devices the same way.
     *
     * <p>Nothing signals a used entry here (the call descriptors are the
     * guest's interrupts), so the used index is read again after each short
     * ppoll(2) of the connection; a back-end that sends anything unasked
     * meanwhile (its hang-up, above all) ends the wait at once.
     */
    public void awaitRingsUsed() {
        checkHome("drain");
        if (!started || client.isBroken() || isBroken()) {
            return; // NEEDS_RESET: a ring start failed, so a ring may never have reached the back-end
        }
        long deadline = System.nanoTime() + replyTimeout.toNanos();
        try (Memory pollfd = new Memory(8); Memory timeout = new Memory(16)) {
            pollfd.setInt(0, client.fd());
            pollfd.setShort(4, (short) (LibC.POLLIN | POLLRDHUP));
            timeout.setLong(0, 0);
            timeout.setLong(8, 50_000); // 50 µs
            for (int q = 0; q < numQueues(); q++) {
                VirtQueue vq = queue(q);
                if (vq.hostNotifier() != null && vq.isEnabled()) {
                    vq.hostNotifier().set();
                }
            }
            for (int q = 0; q < numQueues(); q++) {
                VirtQueue vq = queue(q);
                if (vq.hostNotifier() == null || !vq.isEnabled()) {
                    continue;
                }
                while (true) {
                    int avail = memory().readU16(vq.availAddr() + VirtioRing.AVAIL_IDX);
                    int used = memory().readU16(vq.usedAddr() + VirtioRing.USED_IDX);
                    VarHandle.acquireFence();
                    if (avail == used) {
                        break;
                    }
                    if (System.nanoTime() - deadline > 0) {
                        LOG.error("{} vq{}: the back-end left {} request(s) unused for {} ms (avail.idx {}, used.idx "
                                + "{}); stopping the ring with them in flight", name(), q, (avail - used) & 0xffff,
                                replyTimeout.toMillis(), avail, used);
                        return;
                    }
                    pollfd.setShort(6, (short) 0);
                    int r = LibC.ppoll(pollfd, 1, timeout, Pointer.NULL);
                    if (r < 0 && LibC.errno() == LibC.EINTR) {
                        continue;
                    }
                    if (r < 0) {
                        LOG.error("{} vq{}: ppoll of the back-end's connection failed ({}); stopping the ring with {} "
                                + "in flight", name(), q, Errno.name(LibC.errno()), (avail - used) & 0xffff);
                        return;
                    }
                    if (r > 0) {
                        LOG.warn("{} vq{}: the back-end's connection stirred while its requests drained (revents "
                                + "0x{}); stopping the ring with {} in flight", name(), q,
                                Integer.toHexString(pollfd.getShort(6) & 0xffff), (avail - used) & 0xffff);
                        return;
                    }
                }
            }
        }
    }

    private void checkHome(String what) {
        if (!homeContext().inHomeThread()) {
            throw new IllegalStateException(name() + ": vhost-user " + what + " runs in " + homeContext().name());
        }
    }

    // ------------------------------------------------------------------ VirtioDevice hooks

    /**
     * A kick that reached the device directly: only possible while the rings
     * are not with the back-end (before DRIVER_OK or while paused); the back-end
     * reads the ring when they start, so there is nothing to do.
     */
    @Override
    protected void handleQueue(VirtQueue vq) {
        LOG.trace("{} vq{}: kick while the vhost-user rings are stopped", name(), vq.index());
    }

    @Override
    protected void quiesceForReset() {
        vhostStop();
    }

    /**
     * QEMU's {@code vhost_user_blk_reset} ({@code vhost_dev_free_inflight}):
     * the rings the inflight region describes are gone with the reset, so
     * what a dead back-end left marked there must not be resubmitted against
     * the driver's new rings; the next start asks the back-end for a fresh
     * region.
     */
    @Override
    protected void reset() {
        freeInflight();
    }

    private void freeInflight() {
        if (inflightFd >= 0) {
            io.vblk.aio.LibC.close(inflightFd);
            inflightFd = -1;
            inflightMsg = null;
        }
    }

    /** The guest wrote the config space (write-cache toggle): forwarded with SET_CONFIG. */
    @Override
    protected void onConfigWrite(int offset, int size, long value) {
        if (offset != VirtioBlkAbi.CFG_WRITEBACK || size != 1 || (negotiatedFeatures() & VirtioBlkAbi.F_CONFIG_WCE) == 0) {
            return; // only writeback is writable (VIRTIO_BLK_F_CONFIG_WCE)
        }
        try {
            client.setConfig(offset, new byte[] {(byte) value});
            setConfigU8(offset, (int) value & 0xff);
        } catch (VhostUserException e) {
            LOG.warn("{}: SET_CONFIG failed: {}", name(), e.getMessage());
        }
    }

    /** Closes the connection and the relay eventfds; the rings must be stopped. */
    public void close() {
        if (reconnectTimer != null) {
            reconnectTimer.del();
        }
        if (connectionHandler != null) {
            connectionHandler.remove();
            connectionHandler = null;
        }
        freeInflight();
        closeBackendChannel();
        if (dirtyLog != null) {
            dirtyLog.close();
            dirtyLog = null;
        }
        for (int q = 0; q < relays.length; q++) {
            if (relayHandlers[q] != null) {
                relayHandlers[q].remove();
                relayHandlers[q] = null;
            }
            if (relays[q] != null) {
                relays[q].close();
                relays[q] = null;
            }
        }
        client.close();
    }

    @Override
    public String describe() {
        return super.describe() + "  vhost-user " + client.path() + ": " + (started ? "rings started" : "rings stopped")
                + (client.isBroken() ? " (connection broken)" : "") + ", protocol "
                + VhostUserProtocol.describeProtocolFeatures(protocolFeatures) + ", starts=" + starts + " stops="
                + stops + "\n";
    }
}
