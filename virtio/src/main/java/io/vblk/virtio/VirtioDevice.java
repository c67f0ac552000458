package io.vblk.virtio;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioHandler;
import io.vblk.aio.BottomHalf;
import io.vblk.aio.EventNotifier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The transport-independent part of a virtio device: QEMU's
 * {@code VirtIODevice} (hw/virtio/virtio.c). It owns the feature bits, the
 * status register and its state machine, the device-specific configuration
 * space with its generation counter, the virtqueues, and the reset sequence.
 * A concrete device (virtio-blk) is a subclass that adds queues and config
 * fields in its constructor and implements {@link #handleQueue} and
 * {@link #quiesceForReset}.
 *
 * <h2>Home context</h2>
 * The device's home {@link AioContext} (normally the main loop's) runs every
 * hook: status changes, reset, and queue handlers for kicks that arrive
 * without an ioeventfd. Register accesses come from vCPU threads; the
 * register state is guarded by this object's monitor (a leaf lock: no hook
 * or bus call is made while holding it), and everything with side effects is
 * handed to the home context as a bottom half, never run on the vCPU
 * (DESIGN.md rule 2). A register write made in the home thread itself runs
 * its effects inline, so the main loop and tests see them synchronously.
 *
 * <h2>Status state machine</h2>
 * The driver's writes are stored as written, except that FEATURES_OK is
 * refused (the status reads back without it) when the driver accepted a
 * feature that was not offered, did not accept VERSION_1, or
 * {@link #checkFeatures} objects; DRIVER_OK is refused without FEATURES_OK;
 * and DEVICE_NEEDS_RESET, which only the device sets, survives driver writes
 * until reset. Changes reach {@link #onStatusChange} and {@link #onDriverOk}
 * in the home context, in the order they were written.
 *
 * <h2>Reset</h2>
 * Writing 0 runs the reset sequence in the home context:
 * <ol>
 * <li>{@link #quiesceForReset()}: the subclass stops its I/O and waits until
 *     every request it popped is pushed or detached (virtio-blk drains its
 *     BlockBackend, the dataplane stops); it may poll the home context
 *     ({@code AioWait.pollWhile}) since it runs in the home thread;</li>
 * <li>the queues are reset, features forgotten, {@link #reset()} runs, and the
 *     transport forgets its state ({@link VirtioBus#deviceReset()});</li>
 * <li>only then does the status read back 0.</li>
 * </ol>
 * The vCPU that wrote 0 waits for that sequence before its write returns, as
 * in QEMU, where the vCPU runs the reset itself under the BQL: a driver that
 * polls for 0 (Linux, as virtio 1.2 section 4.1.4.3.2 requires) and one that
 * does not (SeaBIOS) both see a finished reset. Meanwhile other threads read
 * the old status and their register writes are ignored. A reset that does not
 * finish within {@link #RESET_TIMEOUT} fails the writing thread with the
 * watchdog's {@code HangDetectedException} and an event-loop dump (DESIGN.md
 * rule 8) instead of hanging it. Consequence for the machine: its main loop
 * must keep polling (never block) while it waits for a vCPU. A system reset
 * ({@link #resetNow()}) runs the same sequence directly in the home thread.
 *
 * <h2>Bad guest input</h2>
 * {@link #virtioError} (or a queue finding a malformed chain) marks the device
 * broken: every queue stops, the status gains DEVICE_NEEDS_RESET, a
 * configuration-change interrupt is raised (if DRIVER_OK), and one WARN is
 * logged. Only a reset clears it (QEMU's {@code virtio_error}).
 *
 * <p>Collaborators, one concept each: {@link VirtioStatusMachine} (status
 * register, feature negotiation, reset sequence), {@link StatusEventQueue}
 * (status effects handed to the home context in order) and
 * {@link VirtioConfigSpace} (config bytes and generation). This class keeps
 * the queues, kicks and host notifiers, errors, and the device hooks.
 */
public abstract class VirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioDevice.class);
    private static final boolean TRACE = LOG.isTraceEnabled();

    /** Virtio device ids (virtio 1.2 section 5). */
    public static final int ID_NET = 1;
    public static final int ID_BLOCK = 2;
    public static final int ID_CONSOLE = 3;
    public static final int ID_ENTROPY = 4;
    public static final int ID_BALLOON = 5;
    public static final int ID_SCSI = 8;

    /** How long a vCPU's status write of 0 waits for the reset before the watchdog declares a hang. */
    public static final Duration RESET_TIMEOUT = Duration.ofSeconds(60);

    private final String name;
    private final int deviceId;
    private final AioContext home;
    private volatile GuestMemory mem;
    private final VirtioConfigSpace config;
    private final List<VirtQueue> queueList = new ArrayList<>();
    private final List<BottomHalf> kickBhList = new ArrayList<>();
    private volatile VirtQueue[] queues = new VirtQueue[0];
    private volatile BottomHalf[] kickBhs = new BottomHalf[0];
    private volatile VirtioBus bus = VirtioBus.NONE;
    private volatile boolean plugged;

    /** Status register, features and the reset sequence; its state is guarded by this object's monitor. */
    private final VirtioStatusMachine state;

    /**
     * @param features the features offered; VERSION_1 is always added. Offer
     *                 {@link VirtioFeatures#RING_FEATURES} too unless testing without them.
     * @param configSize bytes of device-specific configuration (0 to 4096)
     * @param home     the home context: hooks and direct-mode queue handlers run there
     * @param mem      guest RAM; null for a vhost-user back-end until the front-end's
     *                 memory table arrives ({@link #setMemory})
     */
    protected VirtioDevice(String name, int deviceId, long features, int configSize, AioContext home,
            GuestMemory mem) {
        this.config = new VirtioConfigSpace(configSize);
        this.name = name;
        this.deviceId = deviceId;
        this.home = home;
        this.mem = mem;
        this.state = new VirtioStatusMachine(this, name, home, features | VirtioFeatures.VERSION_1);
    }

    public final String name() {
        return name;
    }

    public final int deviceId() {
        return deviceId;
    }

    public final AioContext homeContext() {
        return home;
    }

    public final GuestMemory memory() {
        return mem;
    }

    /**
     * Replaces the guest memory of the device and every queue: a vhost-user
     * back-end's memory table changed (or, with null, was dropped). The queues
     * must be disabled and served by no thread; home thread only.
     */
    public final void setMemory(GuestMemory m) {
        if (!home.inHomeThread()) {
            throw new IllegalStateException(name + ": guest memory is replaced in the home context " + home.name());
        }
        for (VirtQueue vq : queues) {
            vq.setMemory(m);
        }
        mem = m;
    }

    // ------------------------------------------------------------------ queues

    /** Adds a queue (in the subclass constructor, before the device is plugged into a transport). */
    protected final VirtQueue addQueue(int maxSize) {
        if (plugged) {
            throw new IllegalStateException(name + ": queues are fixed once the device is plugged");
        }
        int index = queueList.size();
        VirtQueue vq = new VirtQueue(name, index, maxSize, mem, this::queueBroken);
        vq.bindOrdering(home.legacy(), home.mainLoop().visibilityModel());
        queueList.add(vq);
        kickBhList.add(home.bhNew(name + "-vq" + index + "-kick", () -> directKick(index)));
        queues = queueList.toArray(new VirtQueue[0]);
        kickBhs = kickBhList.toArray(new BottomHalf[0]);
        return vq;
    }

    public final int numQueues() {
        return queues.length;
    }

    public final VirtQueue queue(int index) {
        return queues[index];
    }

    /** Connects the device to its transport (QEMU's {@code virtio_bus_device_plugged}); once. */
    public final synchronized void plug(VirtioBus b) {
        if (plugged) {
            throw new IllegalStateException(name + " is already plugged");
        }
        plugged = true;
        bus = b;
    }

    // ------------------------------------------------------------------ features

    /** What the device offers (always including VERSION_1). */
    public final long deviceFeatures() {
        return state.deviceFeatures();
    }

    /** What the driver wrote so far (may include bits not offered: FEATURES_OK then fails). */
    public final long driverFeatures() {
        return state.driverFeatures();
    }

    /**
     * Records the driver's accepted features (all 64 bits); ignored once
     * FEATURES_OK is set or during a reset. Returns whether it was taken.
     */
    public final boolean setDriverFeatures(long features) {
        return state.setDriverFeatures(features);
    }

    /** The features in force: valid from FEATURES_OK until reset, 0 otherwise. */
    public final long negotiatedFeatures() {
        return state.negotiatedFeatures();
    }

    public final boolean hasFeature(long mask) {
        return (negotiatedFeatures() & mask) == mask;
    }

    /**
     * Device-specific veto at FEATURES_OK (e.g. a feature that requires
     * another): a reason to refuse, or null. Called under the register lock: be
     * quick and do not call out.
     */
    protected String checkFeatures(long features) {
        return null;
    }

    // ------------------------------------------------------------------ status

    /** The device status register as the driver reads it. */
    public final int status() {
        return state.status();
    }

    /** Whether a reset was requested and has not completed (status does not read 0 yet). */
    public final boolean isResetPending() {
        return state.isResetPending();
    }

    /**
     * A driver write of the status register (from a vCPU or the home thread).
     * 0 resets the device and returns once the reset is complete (see the class
     * comment); anything else goes through the state machine
     * ({@link VirtioStatusMachine}) and its effects run in the home context.
     *
     * @throws io.vblk.aio.HangDetectedException if a reset does not complete within {@link #RESET_TIMEOUT}
     * @throws IllegalStateException if called outside the home thread while holding its context lock
     *         (the reset could never run)
     */
    public final void writeStatus(int value) {
        state.write(value);
    }

    /**
     * A system reset (the machine's, not the driver's): the reset sequence of
     * the class comment, synchronously. Home thread only, and not from inside a
     * device hook.
     */
    public final void resetNow() {
        state.resetNow();
    }

    /** The queues, for the status machine's reset and DRIVER_OK sweeps. */
    final VirtQueue[] queueArray() {
        return queues;
    }

    final VirtioBus bus() {
        return bus;
    }

    // ------------------------------------------------------------------ configuration space

    public final int configSize() {
        return config.size();
    }

    /** The configuration generation (virtio 1.2 section 2.5.1): changes whenever the config space changes. */
    public final int configGeneration() {
        return config.generation();
    }

    /**
     * A driver read of {@code size} bytes (1, 2, 4 or 8) at {@code offset},
     * little-endian; bytes past the end read as 0.
     */
    public final long readConfig(int offset, int size) {
        return config.read(offset, size);
    }

    /** A driver write to the configuration space: handed to {@link #onConfigWrite} (read-only by default). */
    public final void writeConfig(int offset, int size, long value) {
        if (state.isResetPending()) {
            return;
        }
        onConfigWrite(offset, size, value);
    }

    /**
     * A driver wrote the configuration space (in the writing thread, vCPU or
     * home). The default ignores it: fields are read-only unless a device
     * makes them writable with the {@code setConfig*} methods.
     */
    protected void onConfigWrite(int offset, int size, long value) {
        LOG.debug("{}: write to read-only config offset {} ignored", name, offset);
    }

    /** Stores {@code size} little-endian bytes of {@code value} at {@code offset}; a change bumps the generation. */
    protected final void setConfig(int offset, int size, long value) {
        config.write(offset, size, value);
    }

    protected final void setConfigU8(int offset, int value) {
        setConfig(offset, 1, value);
    }

    protected final void setConfigU16(int offset, int value) {
        setConfig(offset, 2, value);
    }

    protected final void setConfigU32(int offset, long value) {
        setConfig(offset, 4, value);
    }

    protected final void setConfigU64(int offset, long value) {
        setConfig(offset, 8, value);
    }

    /**
     * Tells the driver the configuration changed: QEMU's
     * {@code virtio_notify_config} (only once DRIVER_OK is set). Any thread.
     */
    public final void notifyConfigChange() {
        synchronized (this) {
            if ((state.status() & VirtioStatus.DRIVER_OK) == 0) {
                return;
            }
            config.bumpGeneration();
        }
        if (TRACE) {
            LOG.trace("{}: config change notification", name);
        }
        bus.raiseConfigInterrupt();
    }

    // ------------------------------------------------------------------ kicks and interrupts

    /**
     * A driver kick that arrived without an ioeventfd (the transport's direct
     * mode): schedules the queue's handler as a bottom half in the home context,
     * never running it on the kicking thread. Kicks coalesce while pending.
     */
    public final void kick(int index) {
        kickBhs[index].schedule();
    }

    /** The direct-mode kick BH: status effects first, so a kick after DRIVER_OK sees onDriverOk done. */
    private void directKick(int index) {
        state.deliverEvents();
        if (queues[index].hostNotifier() != null) {
            return; // switched to an ioeventfd meanwhile; the eventfd carries the kick
        }
        queueNotify(index);
    }

    /**
     * Runs the queue's handler now, in the calling thread, which must be the
     * queue's current home (QEMU's {@code virtio_queue_notify_vq}); nothing
     * happens unless the device is live (DRIVER_OK, not broken, not resetting,
     * queue enabled).
     */
    public final void queueNotify(int index) {
        VirtQueue vq = queues[index];
        VirtioStatusMachine st = state;
        if ((st.status() & VirtioStatus.DRIVER_OK) == 0 || st.isResetPending() || st.isBroken() || !vq.isEnabled()) {
            if (TRACE) {
                LOG.trace("{} vq{}: notify ignored (status {}, reset pending {}, broken {}, enabled {})", name, index,
                        VirtioStatus.describe(st.status()), st.isResetPending(), st.isBroken(), vq.isEnabled());
            }
            return;
        }
        if (TRACE) {
            LOG.trace("{} vq{}: notify", name, index);
        }
        handleQueue(vq);
    }

    /**
     * Interrupts the driver for {@code vq} if it wants one (QEMU's
     * {@code virtio_notify}: {@link VirtQueue#shouldNotify} then the bus).
     * Call after {@link VirtQueue#flush()}, in the queue's thread.
     */
    public final void notifyGuest(VirtQueue vq) {
        if (vq.shouldNotify()) {
            if (TRACE) {
                LOG.trace("{} vq{}: interrupt", name, vq.index());
            }
            bus.raiseQueueInterrupt(vq.index());
        }
    }

    /**
     * Interrupts the driver for {@code vq} through its irqfd if it wants one
     * (QEMU's {@code virtio_notify_irqfd}): what the dataplane calls from an
     * iothread while guest notifiers are assigned.
     */
    public final void notifyGuestIrqfd(VirtQueue vq) {
        if (vq.shouldNotify()) {
            if (TRACE) {
                LOG.trace("{} vq{}: irqfd interrupt", name, vq.index());
            }
            bus.signalGuestNotifier(vq.index());
        }
    }

    /**
     * Serves queue {@code index}'s ioeventfd from {@code ctx}: QEMU's
     * {@code virtio_queue_aio_attach_host_notifier}. The handler is external
     * (held back while drained) and pollable: {@link VirtQueue#hasWork} for
     * busy polling, with guest notifications off while the loop polls. The
     * transport must have enabled the queue's host notifier first.
     */
    public final void attachHostNotifier(int index, AioContext ctx) {
        VirtQueue vq = queues[index];
        EventNotifier n = vq.hostNotifier();
        if (n == null) {
            throw new IllegalStateException(vq + " has no host notifier: enable it on the transport first");
        }
        if (vq.hostNotifierHandler != null) {
            throw new IllegalStateException(vq + ": host notifier already attached");
        }
        vq.hostNotifierHandler = ctx.setFdHandler(new AioHandler.Builder(name + "-vq" + index + "-kick", n.fd())
                .external(true)
                .onRead(() -> {
                    if (n.testAndClear()) {
                        queueNotify(index);
                    }
                })
                .poll(vq::hasWork, () -> queueNotify(index))
                .pollBeginEnd(() -> vq.setNotification(false), () -> vq.setNotification(true)));
    }

    /** Stops serving the queue's ioeventfd (QEMU's {@code virtio_queue_aio_detach_host_notifier}). */
    public final void detachHostNotifier(int index) {
        VirtQueue vq = queues[index];
        AioHandler h = vq.hostNotifierHandler;
        if (h != null) {
            vq.hostNotifierHandler = null;
            h.remove();
        }
    }

    // ------------------------------------------------------------------ errors

    /**
     * Bad guest input the device found (QEMU's {@code virtio_error}), e.g. a
     * request header of the wrong size: logs once, marks the device broken and
     * DEVICE_NEEDS_RESET, stops every queue, and raises a config interrupt.
     */
    public final void virtioError(String reason) {
        if (state.markBroken()) {
            LOG.warn("{}: {}; device needs reset", name, reason);
            afterBreak();
        }
    }

    /** A queue found bad input (and logged it). */
    private void queueBroken(VirtQueue vq, String reason) {
        if (state.markBroken()) {
            afterBreak();
        }
    }

    private void afterBreak() {
        for (VirtQueue vq : queues) {
            vq.markBroken();
        }
        notifyConfigChange();
    }

    public final boolean isBroken() {
        return state.isBroken();
    }

    // ------------------------------------------------------------------ hooks

    /**
     * The driver kicked {@code vq} (or the loop found work while polling):
     * pop, process, push, flush, {@link #notifyGuest}. Runs in the queue's
     * current home: the device's home context in direct mode, or whichever
     * context {@link #attachHostNotifier} named.
     */
    protected abstract void handleQueue(VirtQueue vq);

    /**
     * First step of every reset, in the home thread: stop all I/O and return
     * only when every popped element was pushed (and flushed) or detached, and
     * no other thread touches the queues any more. May poll the home context.
     */
    protected abstract void quiesceForReset();

    /** Device-specific reset (QEMU's {@code VirtioDeviceClass.reset}), after the queues were reset. */
    protected void reset() {
    }

    /** Every status change, in order, in the home context; a completed reset reports (old, 0) unless old was 0. */
    protected void onStatusChange(int oldStatus, int newStatus) {
    }

    /** DRIVER_OK was set: the driver is ready (the dataplane starts here). Home context. */
    protected void onDriverOk() {
    }

    /** The device's state for a watchdog dump. */
    public String describe() {
        StringBuilder sb = new StringBuilder();
        sb.append(name).append(": id ").append(deviceId).append(state.describe()).append(" generation ")
                .append(config.generation()).append('\n');
        for (VirtQueue vq : queues) {
            sb.append("  ").append(vq.describe()).append('\n');
        }
        return sb.toString();
    }

    @Override
    public String toString() {
        return name;
    }
}
