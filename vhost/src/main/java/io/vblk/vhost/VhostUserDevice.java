package io.vblk.vhost;

import static io.vblk.vhost.VhostUserProtocol.F_PROTOCOL_FEATURES;
import static io.vblk.vhost.VhostUserProtocol.pf;

import io.vblk.aio.AioContext;
import io.vblk.virtio.NotifierBus;
import io.vblk.virtio.VirtioBus;
import io.vblk.virtio.VirtioDevice;
import io.vblk.virtio.blk.IoeventfdOps;

/**
 * The back-end end of a vhost-user connection for one virtio device:
 * libvhost-user's {@code VuDev}, put in front of the same
 * {@link VirtioDevice}, virtqueues and dataplane ({@link IoeventfdOps}) that
 * serve the in-process virtio-pci device. It assembles three parts and is
 * what the rest of the back-end holds:
 * <ul>
 * <li>the transport — {@link VhostUserConnection} over {@link UnixSocket}
 *     and {@link VhostUserMsg}: framing, descriptor passing, the reply rules
 *     (REPLY_ACK) — calls {@link #process} for each message;</li>
 * <li>the message dispatch — {@link VhostUserDispatcher}, one checked
 *     handler per request type ({@code vu_process_message}) — decodes it;</li>
 * <li>the ring state — {@link VhostUserRings} ({@code VuVirtq} and the
 *     SET_VRING_* effects) — starts and stops the dataplane, with the
 *     {@link MemoryTable} ({@code VuDevRegion}) the rings live in.</li>
 * </ul>
 *
 * <p>As {@code VirtioPciTransport} is in-process, it is the device's
 * {@link VirtioBus} (used-buffer notifications go to the rings' call
 * descriptors, a broken device signals their error descriptors, a config
 * change goes out on the back-end channel) and the dataplane's
 * {@link NotifierBus} (the rings' kick descriptors are the host notifiers).
 * A disconnect stops everything, resets the device and unmaps the memory.
 *
 * <p>Threads: {@link #process} and {@link #disconnect} run in the device's
 * home context (the back-end's main loop); the {@link VirtioBus} calls come
 * from any thread.
 */
public final class VhostUserDevice implements VirtioBus, NotifierBus, AutoCloseable {
    /** Protocol features offered: MQ, REPLY_ACK, BACKEND_REQ, CONFIG, RESET_DEVICE, CONFIGURE_MEM_SLOTS, INFLIGHT_SHMFD, LOG_SHMFD. */
    public static final long OFFERED_PROTOCOL_FEATURES = pf(VhostUserProtocol.PF_MQ)
            | pf(VhostUserProtocol.PF_REPLY_ACK) | pf(VhostUserProtocol.PF_BACKEND_REQ)
            | pf(VhostUserProtocol.PF_CONFIG) | pf(VhostUserProtocol.PF_RESET_DEVICE)
            | pf(VhostUserProtocol.PF_CONFIGURE_MEM_SLOTS) | pf(VhostUserProtocol.PF_INFLIGHT_SHMFD)
            | pf(VhostUserProtocol.PF_LOG_SHMFD);
    /** GET_MAX_MEM_SLOTS: how many regions ADD_MEM_REG may build up. */
    public static final int MAX_MEM_SLOTS = 32;

    private final VirtioDevice dev;
    private final AioContext home;
    private final MemoryTable mem = new MemoryTable();
    private final VhostUserRings rings;
    private final VhostUserDispatcher dispatcher;

    /**
     * Puts {@code dev} behind vhost-user: plugs this object in as its bus.
     * Then build the dataplane with this object as its {@link NotifierBus} and
     * hand it over with {@link #setDataplane}.
     */
    public VhostUserDevice(VirtioDevice dev) {
        this.dev = dev;
        this.home = dev.homeContext();
        this.rings = new VhostUserRings(dev, mem);
        this.dispatcher = new VhostUserDispatcher(dev, rings, mem, dev.deviceFeatures() | F_PROTOCOL_FEATURES
                | VhostUserProtocol.F_LOG_ALL);
        dev.plug(this);
    }

    /** The dataplane that serves the rings (built with this object as its {@link NotifierBus}); once. */
    public void setDataplane(IoeventfdOps ops) {
        rings.setDataplane(ops);
    }

    public void setEvents(VhostUserEvents e) {
        VhostUserEvents ev = e == null ? VhostUserEvents.NONE : e;
        rings.setEvents(ev);
        dispatcher.setEvents(ev);
    }

    public VirtioDevice device() {
        return dev;
    }

    /** The features GET_FEATURES answers: the device's plus VHOST_USER_F_PROTOCOL_FEATURES. */
    public long offeredFeatures() {
        return dispatcher.offeredFeatures();
    }

    public long protocolFeatures() {
        return dispatcher.protocolFeatures();
    }

    public boolean isRunning() {
        return rings.isRunning();
    }

    public long messages() {
        return dispatcher.messages();
    }

    public long refusals() {
        return dispatcher.refusals();
    }

    /**
     * Processes one front-end message and returns the reply to send, or null.
     * Never throws for anything the front-end sent; descriptors not taken by a
     * handler are closed. Home thread only.
     */
    public VhostUserMsg process(VhostUserMsg m) {
        checkHome();
        return VhostUserConnection.answer(m, dispatcher);
    }

    private void checkHome() {
        if (!home.inHomeThread()) {
            throw new IllegalStateException("vhost-user messages are processed in " + home.name());
        }
    }

    // ------------------------------------------------------------------ NotifierBus (the dataplane's calls)

    @Override
    public void setHostNotifierEnabled(int q, boolean enabled) {
        rings.setHostNotifierEnabled(q, enabled);
    }

    @Override
    public void setGuestNotifiers(boolean assign) {
        rings.setGuestNotifiers(assign);
    }

    // ------------------------------------------------------------------ VirtioBus (the device's calls)

    @Override
    public void raiseQueueInterrupt(int queueIndex) {
        rings.signalCall(queueIndex);
    }

    @Override
    public void signalGuestNotifier(int queueIndex) {
        rings.signalCall(queueIndex);
    }

    /** Bad guest input broke the device: every ring's error descriptor (SET_VRING_ERR); else a config change. */
    @Override
    public void raiseConfigInterrupt() {
        if (dev.isBroken()) {
            rings.signalErr();
        } else {
            dispatcher.configChanged();
        }
    }

    /**
     * The config space changed (a resize): the front-end is told on the
     * back-end channel if it negotiated one (BACKEND_REQ and CONFIG), whatever
     * the device status. Any thread.
     */
    public void configChanged() {
        dispatcher.configChanged();
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
        rings.disconnect();
        mem.close();
        dispatcher.disconnect();
    }

    /** Releases the idle notifiers; call after {@link #disconnect()}. */
    @Override
    public void close() {
        rings.close();
        mem.close();
    }

    /** The connection's state for a watchdog dump. */
    public String describe() {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format("vhost-user %s: %s, owner=%s features=0x%x%s protocol=%s memory=%s messages=%d "
                + "refused=%d guest_notifiers=%s%n", dev.name(), rings.isRunning() ? "running" : "stopped",
                dispatcher.owner(), rings.features(), rings.featuresSet() ? "" : "(not set)",
                VhostUserProtocol.describeProtocolFeatures(dispatcher.protocolFeatures()), mem, dispatcher.messages(),
                dispatcher.refusals(), rings.guestNotifiersAssigned() ? "assigned" : "released"));
        rings.describeRings(sb);
        return sb.toString();
    }

    @Override
    public String toString() {
        return "VhostUserDevice(" + dev.name() + ")";
    }
}
