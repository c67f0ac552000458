package io.vblk.job;

import com.sun.jna.Memory;

import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * A mirror's operations and its buffer budget: QEMU's {@code ops_in_flight}
 * list, {@code buf_free_count} and {@code mirror_wait_for_free_in_flight_slot}
 * (block/mirror.c). The budget is {@code buf-size} split into slots of the
 * job's granularity; an op takes the slots its bytes need before it reads
 * and gives them back when it ended, and an op that finds too few free waits
 * on an op that holds some — which will free them when it ends.
 *
 * <p>An op is listed before it holds slots, so "some listed op" may be the
 * waiter itself, or another waiter; the fix of bug 010 (ce8cabbd17) waits
 * only on ops whose {@link MirrorOp#isInFlight()} is set. With
 * {@link LegacyBehavior#MIRROR_WAITS_ON_ANY_OP} the waiter takes the first
 * listed op, as before the fix. Job context only: no lock beyond the
 * home-context rule.
 */
final class MirrorOps {
    private final List<MirrorOp> ops = new ArrayList<>();
    private final ArrayDeque<Memory> freeBuffers = new ArrayDeque<>();
    private final int slotBytes;
    private final int totalSlots;
    private int freeSlots;
    private int nextId;

    MirrorOps(int slotBytes, int totalSlots) {
        this.slotBytes = slotBytes;
        this.totalSlots = totalSlots;
        this.freeSlots = totalSlots;
    }

    /** The largest op the budget lets in: a step's range is cut into ops of at most this. */
    int maxOpBytes(int wanted) {
        return Math.min(wanted, slotBytes * totalSlots);
    }

    /** QEMU's {@code mirror_perform}: the op is listed before it holds anything. */
    MirrorOp register(long offset, int bytes) {
        MirrorOp op = new MirrorOp(nextId++, offset, bytes, (bytes + slotBytes - 1) / slotBytes);
        ops.add(op);
        return op;
    }

    /** The op takes its slots and a buffer if enough are free (the {@code buf_free_count} check). */
    boolean tryTake(MirrorOp op) {
        if (freeSlots < op.slots()) {
            return false;
        }
        freeSlots -= op.slots();
        Memory b = freeBuffers.poll();
        if (b == null || b.size() < op.bytes()) {
            b = new Memory((long) op.slots() * slotBytes);
        }
        op.takeSlots(b);
        return true;
    }

    /**
     * QEMU's {@code mirror_wait_for_free_in_flight_slot}: the op to wait on.
     * Fixed: the first listed op that holds slots; legacy: the first listed
     * op, whatever it holds — possibly {@code waiter} itself.
     */
    MirrorOp pickToWaitOn(MirrorOp waiter, LegacySwitches legacy) {
        boolean any = legacy.isOn(LegacyBehavior.MIRROR_WAITS_ON_ANY_OP);
        for (MirrorOp op : ops) {
            if (any || op.isInFlight()) {
                op.waiters().add(waiter);
                waiter.setWaitingOn(op);
                return op;
            }
        }
        throw new IllegalStateException("mirror op " + waiter + " waits for a slot, but no op holds any: " + this);
    }

    /** The op ended: its slots are free, it leaves the list; returns the ops that waited on it (to retry). */
    List<MirrorOp> release(MirrorOp op) {
        ops.remove(op);
        if (op.isInFlight()) {
            freeSlots += op.slots();
            freeBuffers.push(op.dropBuffer());
        }
        List<MirrorOp> w = new ArrayList<>(op.waiters());
        op.waiters().clear();
        for (MirrorOp m : w) {
            m.setWaitingOn(null);
        }
        return w;
    }

    /** Unwind of a diagnosed hang: every op that waits (on anything) stops waiting; returns them. */
    List<MirrorOp> releaseAllWaiters() {
        List<MirrorOp> w = new ArrayList<>();
        for (MirrorOp op : ops) {
            w.addAll(op.waiters());
            op.waiters().clear();
        }
        for (MirrorOp m : w) {
            m.setWaitingOn(null);
        }
        return w;
    }

    int size() {
        return ops.size();
    }

    int freeSlots() {
        return freeSlots;
    }

    int totalSlots() {
        return totalSlots;
    }

    @Override
    public String toString() {
        return "ops_in_flight=" + ops + " free_slots=" + freeSlots + "/" + totalSlots;
    }
}
