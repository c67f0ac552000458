package io.vblk.guest;

import io.vblk.firmware.Platform;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.util.SplittableRandom;
import java.util.function.BooleanSupplier;

/**
 * The load one vCPU keeps on one queue, as fio with {@code iodepth} does on
 * Linux: {@code queueDepth} requests in flight, refilled as they complete,
 * completions taken from the queue's MSI vector (or by spinning on the used
 * ring in guest-poll mode). In verify mode each slot owns a disjoint region
 * of the disk and writes every sector with its LBA and a generation; every
 * read checks them, so a lost, duplicated or misplaced write is caught.
 */
public final class GuestWorkload {
    /** What to run. */
    public record Spec(int queueDepth, int blockSize, IoPattern pattern, boolean verify, boolean guestPoll) {
        public Spec {
            if (queueDepth < 1) {
                throw new IllegalArgumentException("queue depth must be >= 1, got " + queueDepth);
            }
            if (blockSize < 512 || blockSize % 512 != 0) {
                throw new IllegalArgumentException("block size must be a multiple of 512, got " + blockSize);
            }
        }
    }

    /** Counters, read by the runner after (or, racily, during) the run. */
    public static final class Stats {
        public volatile long completed;
        public volatile long bytes;
        public volatile long errors;
        public volatile long mismatches;
        public volatile long interrupts;
        public volatile String firstProblem;
    }

    private final Platform p;
    private final BlkQueue q;
    private final InterruptLine irq;
    private final Spec spec;
    private final SplittableRandom rnd;
    private final long blocksPerSlot;
    private final long firstBlock;
    private final int sectorsPerBlock;
    private final long[] sector;
    private final long[] started;
    private final boolean[] isWrite;
    private final int[] generationOf;   // per block of this queue's area, verify mode
    private final long[] seqCursor;
    private int inFlight;
    private int generation;
    public final Stats stats = new Stats();

    /**
     * {@code area} and {@code areas} split the disk among the queues of a run:
     * this workload uses only area {@code area} of {@code areas}.
     */
    public GuestWorkload(Platform p, BlkQueue q, InterruptLine irq, Spec spec, long capacitySectors, int area, int areas,
                         long seed) {
        this.p = p;
        this.q = q;
        this.irq = irq;
        this.spec = spec;
        this.rnd = new SplittableRandom(seed);
        this.sectorsPerBlock = spec.blockSize() / 512;
        long totalBlocks = capacitySectors / sectorsPerBlock;
        long perArea = totalBlocks / areas;
        if (perArea < spec.queueDepth()) {
            throw new IllegalArgumentException("disk too small: " + totalBlocks + " blocks of " + spec.blockSize()
                    + " bytes for " + areas + " queues x " + spec.queueDepth() + " requests");
        }
        this.firstBlock = perArea * area;
        this.blocksPerSlot = perArea / spec.queueDepth();
        int depth = spec.queueDepth();
        sector = new long[depth];
        started = new long[depth];
        isWrite = new boolean[depth];
        seqCursor = new long[depth];
        generationOf = spec.verify() ? new int[(int) Math.min(Integer.MAX_VALUE, blocksPerSlot * depth)] : null;
        q.bindTo(p);
        q.allocateSlots(depth, spec.blockSize());
    }

    /** Runs until {@code stop} says so and every request in flight has completed. */
    public void run(BooleanSupplier stop, LatencySink latency) {
        if (spec.guestPoll()) {
            q.disableInterrupts();
        }
        for (int s = 0; s < spec.queueDepth(); s++) {
            issue(s);
        }
        kick();
        boolean stopping = false;
        while (inFlight > 0) {
            if (!stopping && stop.getAsBoolean()) {
                stopping = true;
            }
            int n = reapAll(stopping, latency);
            if (n > 0) {
                kick();
                continue;
            }
            if (spec.guestPoll()) {
                p.delayMicros(0); // a pause in the spin: also where a stopping vCPU leaves
                continue;
            }
            if (!q.enableInterrupts()) {
                continue; // a completion slipped in: reap it before waiting
            }
            // Like Linux, wait for the interrupt: a lost one hangs the guest (and a watchdog reports it)
            // rather than being papered over by re-reading the ring on a timer.
            if (irq.await(-1) >= 0) {
                stats.interrupts++;
            }
        }
    }

    private int reapAll(boolean stopping, LatencySink latency) {
        int n = 0;
        int slot;
        while ((slot = q.reap()) >= 0) {
            n++;
            inFlight--;
            long now = p.nanoTime();
            latency.record(now - started[slot]);
            complete(slot);
            if (!stopping) {
                issue(slot);
            }
        }
        return n;
    }

    private void complete(int slot) {
        int status = q.status(slot);
        if (status != VirtioBlkAbi.S_OK) {
            stats.errors++;
            problem("sector " + sector[slot] + ": status " + status);
        } else if (spec.verify() && !isWrite[slot]) {
            check(slot);
        }
        stats.completed++;
        stats.bytes += spec.blockSize();
    }

    private void issue(int slot) {
        long block;
        if (spec.pattern().random()) {
            block = slot * blocksPerSlot + rnd.nextLong(blocksPerSlot);
        } else {
            block = (slot + seqCursor[slot] * spec.queueDepth()) % (blocksPerSlot * spec.queueDepth());
            seqCursor[slot]++;
        }
        boolean write = rnd.nextInt(100) >= spec.pattern().readPercent();
        long s = (firstBlock + block) * sectorsPerBlock;
        sector[slot] = s;
        isWrite[slot] = write;
        if (write && spec.verify()) {
            int gen = ++generation;
            generationOf[(int) block] = gen;
            stamp(p, q.buffer(slot), s, sectorsPerBlock, gen);
        }
        started[slot] = p.nanoTime();
        q.submit(slot, write ? VirtioBlkAbi.T_OUT : VirtioBlkAbi.T_IN, s, spec.blockSize());
        inFlight++;
    }

    private void kick() {
        q.kick();
    }

    /**
     * The verify-mode pattern of {@code sectors} sectors from {@code lba}:
     * each holds its LBA and {@code tag} at bytes 0..15 and their xor in its
     * last 8 bytes.
     */
    public static void stamp(Platform p, long gpa, long lba, int sectors, long tag) {
        for (int i = 0; i < sectors; i++) {
            long a = gpa + 512L * i;
            p.ramWrite64(a, lba + i);
            p.ramWrite64(a + 8, tag);
            p.ramWrite64(a + 504, (lba + i) ^ tag);
        }
    }

    /**
     * What verify mode left at sector {@code lba} once the run has ended:
     * the generation of the last write to its block (0: never written, so
     * zeroes), or -1 when the sector is outside this workload's area. A test
     * checks an image read back by another client (e.g. {@code rbd export})
     * against it: nothing the guest was told was written may be missing.
     */
    public long expectedTag(long lba) {
        if (generationOf == null) {
            throw new IllegalStateException("the workload does not run in verify mode");
        }
        long block = lba / sectorsPerBlock - firstBlock;
        return block < 0 || block >= generationOf.length ? -1 : generationOf[(int) block];
    }

    private void check(int slot) {
        long block = sector[slot] / sectorsPerBlock - firstBlock;
        int gen = generationOf[(int) block];
        long gpa = q.buffer(slot);
        for (int i = 0; i < sectorsPerBlock; i++) {
            long a = gpa + 512L * i;
            long lba = p.ramRead64(a);
            long g = p.ramRead64(a + 8);
            long x = p.ramRead64(a + 504);
            boolean ok = gen == 0 ? lba == 0 && g == 0 && x == 0
                    : lba == sector[slot] + i && g == gen && x == ((sector[slot] + i) ^ gen);
            if (!ok) {
                stats.mismatches++;
                problem("sector " + (sector[slot] + i) + ": read lba=" + lba + " gen=" + g + ", expected "
                        + (gen == 0 ? "zeroes" : "lba=" + (sector[slot] + i) + " gen=" + gen));
                return;
            }
        }
    }

    private void problem(String s) {
        if (stats.firstProblem == null) {
            stats.firstProblem = "queue " + q.index() + ": " + s;
        }
    }
}
