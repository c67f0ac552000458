package io.vblk.virtio;

import java.util.concurrent.CompletableFuture;

import io.vblk.aio.AioContext;
import io.vblk.aio.BottomHalf;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A device's status register with its state machine, feature negotiation
 * and the reset sequence: QEMU's {@code virtio_set_status},
 * {@code virtio_set_features} and {@code virtio_reset} (hw/virtio/virtio.c).
 * One per {@link VirtioDevice}, whose public methods delegate here.
 *
 * <h2>Status state machine</h2>
 * The driver's writes are stored as written, except that FEATURES_OK is
 * refused (the status reads back without it) when the driver accepted a
 * feature that was not offered, did not accept VERSION_1, or the device's
 * {@link VirtioDevice#checkFeatures} objects; DRIVER_OK is refused without
 * FEATURES_OK; and DEVICE_NEEDS_RESET, which only the device sets, survives
 * driver writes until reset. Changes reach the device's hooks in the home
 * context, in the order they were written ({@link StatusEventQueue}).
 *
 * <h2>Locking</h2>
 * The register state is guarded by the device's monitor, as it was when it
 * lived in the device (a leaf lock: no hook or bus call is made while holding
 * it). Status, reset-pending, broken and the negotiated features are also
 * volatile, so the request path reads them without the lock.
 */
final class VirtioStatusMachine implements StatusEventQueue.Sink {
    /** The device's logger: these are the device's log lines. */
    private static final Logger LOG = LoggerFactory.getLogger(VirtioDevice.class);

    private final VirtioDevice dev;
    private final String name;
    private final AioContext home;
    private final long deviceFeatures;
    private long driverFeatures;
    private volatile long negotiatedFeatures;
    private volatile int status;
    private volatile boolean resetPending;
    private volatile boolean broken;
    /** Completed when the pending reset finished (status reads 0); guarded by the device. */
    private CompletableFuture<Void> resetDone;
    /** Status changes and resets, in the order the driver wrote them. */
    private final StatusEventQueue statusEvents = new StatusEventQueue();
    private final BottomHalf statusBh;

    VirtioStatusMachine(VirtioDevice dev, String name, AioContext home, long deviceFeatures) {
        this.dev = dev;
        this.name = name;
        this.home = home;
        this.deviceFeatures = deviceFeatures;
        this.statusBh = home.bhNew(name + "-status", this::deliverEvents);
    }

    int status() {
        return status;
    }

    boolean isResetPending() {
        return resetPending;
    }

    boolean isBroken() {
        return broken;
    }

    long deviceFeatures() {
        return deviceFeatures;
    }

    long driverFeatures() {
        synchronized (dev) {
            return driverFeatures;
        }
    }

    long negotiatedFeatures() {
        return negotiatedFeatures;
    }

    /** Records the driver's accepted features; ignored once FEATURES_OK is set or during a reset. */
    boolean setDriverFeatures(long features) {
        synchronized (dev) {
            if (resetPending || (status & VirtioStatus.FEATURES_OK) != 0) {
                LOG.debug("{}: driver feature write 0x{} ignored (status {})", name, Long.toHexString(features),
                        VirtioStatus.describe(status));
                return false;
            }
            driverFeatures = features;
            return true;
        }
    }

    private String featureProblem(long f) {
        long unknown = f & ~deviceFeatures;
        if (unknown != 0) {
            return String.format("driver accepted features 0x%x that were not offered (offered 0x%x)", unknown,
                    deviceFeatures);
        }
        if ((f & VirtioFeatures.VERSION_1) == 0) {
            return "driver did not accept VIRTIO_F_VERSION_1";
        }
        return dev.checkFeatures(f);
    }

    /**
     * A driver write of the status register (from a vCPU or the home thread).
     * 0 resets the device and returns once the reset is complete (see {@link VirtioDevice}
     * comment); anything else goes through the state machine and its effects
     * run in the home context.
     *
     * @throws io.vblk.aio.HangDetectedException if a reset does not complete within {@link VirtioDevice#RESET_TIMEOUT}
     * @throws IllegalStateException if called outside the home thread while holding its context lock
     *         (the reset could never run)
     */
    void write(int value) {
        int v = value & 0xff;
        boolean inHome = home.inHomeThread();
        if (v == 0 && !inHome && home.lock().isHeldByCurrentThread()) {
            throw new IllegalStateException(name + ": reset requested by thread '" + Thread.currentThread().getName()
                    + "' holding the lock of home context " + home.name() + ", which must run the reset");
        }
        CompletableFuture<Void> waitFor = null;
        synchronized (dev) {
            if (resetPending) {
                LOG.debug("{}: status write {} ignored: reset in progress", name, VirtioStatus.describe(v));
                if (v == 0 && !inHome) {
                    waitFor = resetDone;
                }
            } else if (v == 0) {
                resetPending = true;
                resetDone = new CompletableFuture<>();
                waitFor = resetDone;
                statusEvents.addReset(status);
            } else {
                int old = status;
                int now = (v & ~VirtioStatus.DEVICE_NEEDS_RESET) | (old & VirtioStatus.DEVICE_NEEDS_RESET);
                if ((now & VirtioStatus.FEATURES_OK) != 0 && (old & VirtioStatus.FEATURES_OK) == 0) {
                    String why = featureProblem(driverFeatures);
                    if (why != null) {
                        now &= ~VirtioStatus.FEATURES_OK;
                        LOG.info("{}: FEATURES_OK refused: {}", name, why);
                    } else {
                        negotiatedFeatures = driverFeatures;
                        for (VirtQueue vq : dev.queueArray()) {
                            vq.setFeatures(negotiatedFeatures);
                        }
                    }
                }
                if ((now & VirtioStatus.DRIVER_OK) != 0 && (now & VirtioStatus.FEATURES_OK) == 0) {
                    now &= ~VirtioStatus.DRIVER_OK;
                    LOG.info("{}: DRIVER_OK refused: features were not negotiated (no FEATURES_OK)", name);
                }
                status = now;
                if (now == old) {
                    return;
                }
                statusEvents.addChange(old, now);
                LOG.debug("{}: status {} -> {}", name, VirtioStatus.describe(old), VirtioStatus.describe(now));
            }
        }
        if (inHome) {
            deliverEvents();
            return;
        }
        if (waitFor == null) {
            statusBh.schedule();
            return;
        }
        statusBh.schedule();
        home.mainLoop().watchdog(VirtioDevice.RESET_TIMEOUT).await("reset of " + name, waitFor);
    }

    /**
     * A system reset (the machine's, not the driver's): the reset sequence of
     * the {@link VirtioDevice} class comment, synchronously. Home thread only, and not from inside a
     * device hook.
     */
    void resetNow() {
        if (!home.inHomeThread()) {
            throw new IllegalStateException(name + ": resetNow outside the home context " + home.name());
        }
        synchronized (dev) {
            if (!resetPending) {
                resetPending = true;
                resetDone = new CompletableFuture<>();
                statusEvents.addReset(status);
            }
        }
        deliverEvents();
    }

    /** Delivers pending status events in order: the status BH, or inline in the home thread. */
    void deliverEvents() {
        statusEvents.deliver(this);
    }

    /** A status change reaches the device; DRIVER_OK starts it. */
    @Override
    public void change(int old, int now) {
        dev.onStatusChange(old, now);
        if ((now & VirtioStatus.DRIVER_OK) != 0 && (old & VirtioStatus.DRIVER_OK) == 0) {
            dev.onDriverOk();
            // The device may not consume buffers before DRIVER_OK, so kicks that came
            // earlier were ignored: look at every directly dispatched queue once now.
            for (VirtQueue vq : dev.queueArray()) {
                if (vq.hostNotifier() == null && vq.isEnabled()) {
                    dev.queueNotify(vq.index());
                }
            }
        }
    }

    /** The reset sequence; completes (status reads 0) even if a hook throws, then rethrows. */
    @Override
    public void reset(int old) {
        LOG.debug("{}: reset from status {}", name, VirtioStatus.describe(old));
        RuntimeException failure = null;
        try {
            dev.quiesceForReset();
        } catch (RuntimeException ex) {
            failure = ex;
        }
        for (VirtQueue vq : dev.queueArray()) {
            if (vq.inUse() != 0) {
                LOG.warn("{}: vq{} still has {} chains in use after quiesceForReset; forgetting them", name,
                        vq.index(), vq.inUse());
            }
            vq.reset();
        }
        synchronized (dev) {
            driverFeatures = 0;
            negotiatedFeatures = 0;
            broken = false;
        }
        try {
            dev.reset();
        } catch (RuntimeException ex) {
            failure = failure == null ? ex : failure;
        }
        try {
            dev.bus().deviceReset();
        } catch (RuntimeException ex) {
            failure = failure == null ? ex : failure;
        }
        CompletableFuture<Void> done;
        synchronized (dev) {
            status = 0;
            resetPending = false;
            done = resetDone;
            resetDone = null;
        }
        if (done != null) {
            done.complete(null);
        }
        LOG.debug("{}: reset complete", name);
        if (old != 0) {
            try {
                dev.onStatusChange(old, 0);
            } catch (RuntimeException ex) {
                failure = failure == null ? ex : failure;
            }
        }
        if (failure != null) {
            throw failure;
        }
    }

    /** Marks the device broken and DEVICE_NEEDS_RESET; true the first time (until reset). */
    boolean markBroken() {
        synchronized (dev) {
            if (broken) {
                return false;
            }
            broken = true;
            status |= VirtioStatus.DEVICE_NEEDS_RESET;
            return true;
        }
    }

    /** The register part of a watchdog dump. */
    String describe() {
        synchronized (dev) {
            return " status " + VirtioStatus.describe(status) + (resetPending ? " (reset pending)" : "")
                    + (broken ? " BROKEN" : "") + String.format(" features offered 0x%x negotiated 0x%x",
                            deviceFeatures, negotiatedFeatures);
        }
    }
}
