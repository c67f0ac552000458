package io.vblk.tests;

import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BooleanSupplier;

import io.vblk.guest.BlkQueue;
import io.vblk.guest.InterruptLine;
import io.vblk.guest.MachinePlatform;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * A guest program for data tests, like fio with verify: {@code depth}
 * requests of 4 KiB in flight on one queue, random blocks, a mix of reads
 * and writes. Slot s only touches blocks ≡ s (mod depth), so no two requests
 * of one program overlap. Writes carry fresh tags and are recorded in the
 * shared {@link DiskModel}; reads are checked against it. It runs until told
 * to stop, then drains; a pause of the machine parks it anywhere and it goes
 * on when resumed (possibly much later, on a machine the disk came back to).
 */
final class ModelWorkload {
    private static final long WAIT_SLICE_NS = 50_000_000L;

    private final DiskModel model;
    private final BlkQueue q;
    private final int depth;
    private volatile int readPercent;
    private final AtomicLong tags;
    private final SplittableRandom rnd;
    private final int[] block;
    private final long[] tag;
    private final boolean[] isWrite;
    private final long[] since;
    private final long[] before;
    private final int firstBlock;
    private final int blockCount;
    private int inFlight;
    volatile long completed;
    volatile long writes;
    volatile String problem;
    private volatile long target = Long.MAX_VALUE;
    private volatile CompletableFuture<Void> reached;

    /** Works on blocks [firstBlock, firstBlock + blockCount) of the model's disk. */
    ModelWorkload(DiskModel model, BlkQueue q, int depth, int readPercent, AtomicLong tags, long seed, int firstBlock,
                  int blockCount) {
        this.model = model;
        this.q = q;
        this.depth = depth;
        this.readPercent = readPercent;
        this.tags = tags;
        this.rnd = new SplittableRandom(seed);
        this.firstBlock = firstBlock;
        this.blockCount = blockCount;
        block = new int[depth];
        tag = new long[depth];
        isWrite = new boolean[depth];
        since = new long[depth];
        before = new long[depth];
        q.allocateSlots(depth, DiskModel.BLOCK);
    }

    /** Changes the share of reads (100: the guest only reads) from now on. */
    void setReadPercent(int pct) {
        readPercent = pct;
    }

    /** Completes once the program has completed {@code n} requests in total. */
    synchronized CompletableFuture<Void> whenCompleted(long n) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        if (completed >= n) {
            f.complete(null);
            return f;
        }
        reached = f;
        target = n;
        return f;
    }

    private void progressed() {
        if (completed >= target) {
            CompletableFuture<Void> f;
            synchronized (this) {
                f = reached;
                reached = null;
                target = Long.MAX_VALUE;
            }
            if (f != null) {
                f.complete(null);
            }
        }
    }

    /** The program: run on the vCPU that owns the queue. */
    Void run(MachinePlatform p, BooleanSupplier stop) {
        for (int s = 0; s < depth; s++) {
            issue(p, s);
        }
        q.kick();
        boolean stopping = false;
        InterruptLine irq = p.interrupts();
        while (inFlight > 0) {
            if (!stopping && stop.getAsBoolean()) {
                stopping = true;
            }
            int n = 0;
            int slot;
            while ((slot = q.reap()) >= 0) {
                n++;
                inFlight--;
                complete(p, slot);
                if (!stopping) {
                    issue(p, slot);
                }
            }
            if (n > 0) {
                q.kick();
                progressed();
                continue;
            }
            if (!q.enableInterrupts()) {
                continue;
            }
            irq.await(WAIT_SLICE_NS);
        }
        return null;
    }

    private void issue(MachinePlatform p, int slot) {
        int span = blockCount / depth;
        int b = firstBlock + slot + depth * rnd.nextInt(span);
        boolean w = rnd.nextInt(100) >= readPercent;
        block[slot] = b;
        isWrite[slot] = w;
        long lba = (long) b * DiskModel.SECTORS;
        long gpa = q.buffer(slot);
        if (w) {
            long t = tags.incrementAndGet();
            tag[slot] = t;
            for (int i = 0; i < DiskModel.SECTORS; i++) {
                long a = gpa + 512L * i;
                p.ramWrite64(a, lba + i);
                p.ramWrite64(a + 8, t);
                p.ramWrite64(a + 504, (lba + i) ^ t);
            }
            model.issueWrite(b, t);
            writes++;
        } else {
            since[slot] = model.seq();
            before[slot] = model.tag(b);
        }
        q.submit(slot, w ? VirtioBlkAbi.T_OUT : VirtioBlkAbi.T_IN, lba, DiskModel.BLOCK);
        inFlight++;
    }

    private void complete(MachinePlatform p, int slot) {
        int b = block[slot];
        int st = q.status(slot);
        completed++;
        if (isWrite[slot]) {
            model.completeWrite(b, tag[slot], st == VirtioBlkAbi.S_OK);
            if (st != VirtioBlkAbi.S_OK) {
                problem("write of block " + b + ": status " + st);
            }
            return;
        }
        if (st != VirtioBlkAbi.S_OK) {
            problem("read of block " + b + ": status " + st);
            return;
        }
        byte[] buf = new byte[DiskModel.BLOCK];
        long gpa = q.buffer(slot);
        for (int i = 0; i < DiskModel.BLOCK; i += 8) {
            long v = p.ramRead64(gpa + i);
            for (int k = 0; k < 8; k++) {
                buf[i + k] = (byte) (v >>> (8 * k));
            }
        }
        Object t = DiskModel.decode(buf, 0, b);
        String e = t instanceof String ? (String) t : model.checkRead(b, (Long) t, since[slot], before[slot]);
        if (e != null) {
            problem(e);
        }
    }

    private void problem(String s) {
        if (problem == null) {
            problem = s;
        }
    }
}
