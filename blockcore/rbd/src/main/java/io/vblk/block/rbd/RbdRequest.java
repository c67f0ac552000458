package io.vblk.block.rbd;

import io.vblk.block.BlockCompletion;
import io.vblk.block.IoVec;

import com.sun.jna.Memory;

import io.netty.util.internal.PlatformDependent;

/**
 * One asynchronous librbd request of an {@link RbdDriver}: QEMU's
 * {@code RBDTask}. Pooled per driver, so a request allocates nothing: it owns
 * native memory for the {@code rbd_completion_t} out-parameter and a
 * {@code struct iovec} array that points straight at the caller's segments
 * (guest RAM), which librbd reads or fills without a bounce copy. The memory
 * stays reachable from the pool until the driver closes, i.e. after librbd let
 * go of it.
 */
final class RbdRequest {
    static final int READ = 0;
    static final int WRITE = 1;
    static final int FLUSH = 2;
    static final int DISCARD = 3;
    static final int WRITE_ZEROES = 4;

    private static final int IOVEC_SIZE = 16; // struct iovec { void *iov_base; size_t iov_len; }

    final RbdDriver driver;
    final int id;
    private Memory mem;
    /** {@code mem}'s address: [rbd_completion_t][struct iovec ...]. */
    private long base;
    private int iovCapacity;

    int type;
    long offset;
    long bytes;
    IoVec qiov;
    BlockCompletion cb;
    /** librbd's return value, written on its thread before the hand-off publishes the request. */
    long ret;
    /** Link in the driver's completed stack (or free list): written before the atomic push. */
    RbdRequest next;

    RbdRequest(RbdDriver driver) {
        this.driver = driver;
        this.id = RbdCompletions.register(this);
        ensureIovecs(4);
    }

    /** Address of 8 bytes that receive the {@code rbd_completion_t}. */
    long completionOut() {
        return base;
    }

    long completion() {
        return PlatformDependent.getLong(base);
    }

    long iovecs() {
        return base + 8;
    }

    /** Writes {@code v}'s segments as a {@code struct iovec} array; grows (rarely) for a longer vector. */
    int fillIovecs(IoVec v) {
        int n = v.count();
        ensureIovecs(n);
        long a = base + 8;
        for (int i = 0; i < n; i++) {
            PlatformDependent.putLong(a, v.address(i));
            PlatformDependent.putLong(a + 8, v.length(i));
            a += IOVEC_SIZE;
        }
        return n;
    }

    private void ensureIovecs(int n) {
        if (n <= iovCapacity) {
            return;
        }
        int cap = Math.max(n, iovCapacity * 2);
        mem = new Memory(8 + (long) cap * IOVEC_SIZE);
        base = Memory.nativeValue(mem);
        iovCapacity = cap;
    }

    /** Called by {@link RbdCompletions} on librbd's thread. */
    void completedOnLibrbdThread(long result) {
        ret = result;
        driver.completed(this);
    }
}
