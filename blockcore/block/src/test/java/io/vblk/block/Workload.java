package io.vblk.block;

import com.sun.jna.Memory;

import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Random reads and writes through a backend, kept {@code depth} deep from
 * completion callbacks in the node's home context, checked against an
 * in-memory model of the disk. Requests in flight never overlap, so every
 * read has exactly one right answer. Records failures instead of throwing,
 * since callbacks run on event-loop threads.
 */
final class Workload {
    final byte[] model;
    private final BlockBackend blk;
    private final Random rnd;
    private final int depth;
    private final int maxLen;
    private final long[] start;
    private final long[] end;
    private final Memory[] bufs;
    private final IoVec[] iovs;
    private final boolean[] outstanding;
    private final Slot[] slots;
    private int remaining;
    private int active;
    private volatile boolean stopping;
    final AtomicInteger issued = new AtomicInteger();
    final AtomicInteger completed = new AtomicInteger();
    final AtomicInteger duplicates = new AtomicInteger();
    final AtomicInteger wrongThread = new AtomicInteger();
    final AtomicInteger errors = new AtomicInteger();
    final AtomicInteger mismatches = new AtomicInteger();
    volatile String firstProblem;
    private CompletableFuture<Void> done = new CompletableFuture<>();

    Workload(BlockBackend blk, byte[] model, long seed, int depth, int maxLen) {
        this.blk = blk;
        this.model = model;
        this.rnd = new Random(seed);
        this.depth = depth;
        this.maxLen = maxLen;
        start = new long[depth];
        end = new long[depth];
        bufs = new Memory[depth];
        iovs = new IoVec[depth];
        outstanding = new boolean[depth];
        slots = new Slot[depth];
        for (int i = 0; i < depth; i++) {
            bufs[i] = new Memory(maxLen);
            iovs[i] = new IoVec(1);
            slots[i] = new Slot(i);
        }
    }

    /** Starts {@code count} requests (must run in the backend's home context); the future completes when all did. */
    CompletableFuture<Void> run(int count) {
        done = new CompletableFuture<>();
        remaining = count;
        stopping = false;
        for (int i = 0; i < depth && remaining > 0; i++) {
            next(i);
        }
        if (active == 0) {
            done.complete(null);
        }
        return done;
    }

    /** Runs forever (until {@link #stop()}). */
    CompletableFuture<Void> runUntilStopped() {
        return run(Integer.MAX_VALUE);
    }

    void stop() {
        stopping = true;
    }

    private void next(int slot) {
        int len = 1 + rnd.nextInt(maxLen);
        long off;
        do {
            off = (long) (rnd.nextDouble() * (model.length - len + 1));
        } while (overlaps(slot, off, off + len));
        start[slot] = off;
        end[slot] = off + len;
        boolean write = rnd.nextBoolean();
        Slot s = slots[slot];
        s.write = write;
        s.len = len;
        IoVec v = iovs[slot];
        v.reset();
        v.add(Memory.nativeValue(bufs[slot]), len);
        remaining--;
        active++;
        outstanding[slot] = true;
        issued.incrementAndGet();
        if (write) {
            byte[] data = new byte[len];
            rnd.nextBytes(data);
            bufs[slot].write(0, data, 0, len);
            blk.pwritev(off, len, v, 0, s);
        } else {
            bufs[slot].clear(len);
            blk.preadv(off, len, v, 0, s);
        }
    }

    private boolean overlaps(int slot, long s, long e) {
        for (int i = 0; i < depth; i++) {
            if (i != slot && outstanding[i] && s < end[i] && start[i] < e) {
                return true;
            }
        }
        return false;
    }

    private void problem(String p) {
        if (firstProblem == null) {
            firstProblem = p;
        }
    }

    private final class Slot implements BlockCompletion {
        final int index;
        boolean write;
        int len;

        Slot(int index) {
            this.index = index;
        }

        @Override
        public void complete(int ret) {
            BlockNode n = blk.root();
            if (Thread.currentThread() != n.context().homeThread()) {
                wrongThread.incrementAndGet();
                problem("completion on " + Thread.currentThread().getName() + " while the node lives in "
                        + n.context().name());
            }
            if (!outstanding[index]) {
                duplicates.incrementAndGet();
                problem("duplicate completion for slot " + index);
                return;
            }
            outstanding[index] = false;
            completed.incrementAndGet();
            active--;
            int off = (int) start[index];
            if (ret < 0) {
                errors.incrementAndGet();
                problem((write ? "write" : "read") + " at " + off + " failed: " + ret);
            } else if (write) {
                bufs[index].read(0, model, off, len);
            } else {
                byte[] got = bufs[index].getByteArray(0, len);
                if (!Arrays.equals(got, 0, len, model, off, off + len)) {
                    mismatches.incrementAndGet();
                    problem("read at " + off + " (" + len + " bytes) does not match the model");
                }
            }
            if (!stopping && remaining > 0) {
                next(index);
            } else if (active == 0) {
                done.complete(null);
            }
        }
    }
}
