package io.vblk.job;

import com.sun.jna.Memory;

import io.vblk.block.IoVec;

import java.util.ArrayList;
import java.util.List;

/**
 * One copy operation of a mirror: QEMU's {@code MirrorOp} (block/mirror.c).
 * It is listed in its job's {@link MirrorOps} from the moment the step
 * creates it ({@code mirror_perform} inserts it into {@code ops_in_flight}
 * before its coroutine runs), but holds buffer slots only once
 * {@link MirrorOps#tryTake} gave them: {@link #isInFlight()} says which —
 * QEMU's {@code is_in_flight}, the flag ce8cabbd17 added (bug 010). Ops that
 * found no free slot wait on one that holds slots ({@link #waiters()},
 * QEMU's {@code waiting_requests}) and retry when it ends. Job context only.
 */
public final class MirrorOp {
    private final int id;
    private final long offset;
    private final int bytes;
    private final int slots;
    private final List<MirrorOp> waiters = new ArrayList<>();
    private boolean inFlight;
    private MirrorOp waitingOn;
    private Memory buf;
    private final IoVec iov = new IoVec(1);

    MirrorOp(int id, long offset, int bytes, int slots) {
        this.id = id;
        this.offset = offset;
        this.bytes = bytes;
        this.slots = slots;
    }

    /** The op's number within its job (for dumps and seams). */
    public int id() {
        return id;
    }

    public long offset() {
        return offset;
    }

    public int bytes() {
        return bytes;
    }

    /** How many buffer slots it needs (QEMU's {@code nb_chunks}). */
    public int slots() {
        return slots;
    }

    /** QEMU's {@code is_in_flight}: it holds its slots (and so will free them when it ends). */
    public boolean isInFlight() {
        return inFlight;
    }

    /** The op this one waits on for a free slot, or null. */
    public MirrorOp waitingOn() {
        return waitingOn;
    }

    List<MirrorOp> waiters() {
        return waiters;
    }

    void setWaitingOn(MirrorOp op) {
        waitingOn = op;
    }

    void takeSlots(Memory b) {
        buf = b;
        inFlight = true;
    }

    Memory buffer() {
        return buf;
    }

    IoVec iov() {
        return iov;
    }

    /** Gives the buffer back: the op ended. */
    Memory dropBuffer() {
        Memory b = buf;
        buf = null;
        inFlight = false;
        return b;
    }

    @Override
    public String toString() {
        return "op" + id + "[" + offset + "+" + bytes + (inFlight ? " in-flight" : "")
                + (waitingOn != null ? " waits-on op" + waitingOn.id : "") + "]";
    }
}
