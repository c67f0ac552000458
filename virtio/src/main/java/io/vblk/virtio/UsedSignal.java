package io.vblk.virtio;

import static io.vblk.virtio.VirtioRing.AVAIL_F_NO_INTERRUPT;
import static io.vblk.virtio.VirtioRing.needEvent;

/**
 * Whether the driver wants an interrupt for what the device published:
 * QEMU's {@code virtio_should_notify} with its {@code signalled_used} and
 * {@code signalled_used_valid} state. With EVENT_IDX the driver's used_event
 * is compared against the range published since the last interrupt
 * ({@code vring_need_event}); without it VRING_AVAIL_F_NO_INTERRUPT decides.
 * Part of one {@link VirtQueue}, used in its thread.
 */
final class UsedSignal {
    private boolean signalledUsedValid;
    private int signalledUsed;
    private long signals;

    /**
     * The decision for used.idx {@code now}; {@code avail} is the mapped
     * available ring. A true result is a promise to interrupt: it records what
     * was signalled. The caller has fenced after publishing used.idx.
     */
    boolean shouldNotify(int now, long avail, int size, boolean eventIdx) {
        boolean valid = signalledUsedValid;
        int old = signalledUsed;
        if (valid && old == now) {
            return false;
        }
        signalledUsedValid = true;
        signalledUsed = now;
        boolean notify;
        if (eventIdx) {
            int usedEvent = HostMemory.getU16LE(avail + VirtioRing.usedEventOffset(size));
            notify = !valid || needEvent(usedEvent, now, old);
        } else {
            notify = (HostMemory.getU16LE(avail) & AVAIL_F_NO_INTERRUPT) == 0;
        }
        if (notify) {
            signals++;
        }
        return notify;
    }

    /** used.idx moved from {@code old} to {@code now}: a last signalled index inside that range (after wrap-around) is forgotten. */
    void published(int old, int now) {
        if ((short) (now - signalledUsed) < ((now - old) & 0xffff)) {
            signalledUsedValid = false;
        }
    }

    /** The used index was restored (vhost-user ring base): nothing was signalled in the new numbering. */
    void forget() {
        signalledUsedValid = false;
    }

    void reset() {
        signalledUsedValid = false;
        signalledUsed = 0;
    }

    long signals() {
        return signals;
    }
}
