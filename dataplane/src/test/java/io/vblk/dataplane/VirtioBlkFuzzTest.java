package io.vblk.dataplane;

import static io.vblk.virtio.blk.VirtioBlkAbi.SECTOR;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import io.vblk.dataplane.BlkMachine.Serving;
import io.vblk.dataplane.BlkMachine.Spec;
import io.vblk.testkit.BlkDriver;
import io.vblk.testkit.BlkHeaders;
import io.vblk.testkit.Bytes;
import io.vblk.testkit.GuestRing;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioRing;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * Fuzzing the device with random descriptors, chains and request headers:
 * 100,000 requests (avail ring entries) in batches, from a seeded generator
 * ({@code -Dvblk.fuzz.seed=N} replays one; the seed is in every failure
 * message). Most chains are requests mutated at random (header types and
 * sectors, lengths that are not sector multiples, segment lists, a missing
 * status byte, a short or writable header, flipped WRITE flags, zero lengths,
 * buffers outside RAM, corrupted next links, unknown flag bits, indirect
 * tables of bad size, nested or combined with NEXT, avail entries naming
 * another chain's or a random descriptor, avail.idx jumps); some are random
 * descriptors outright.
 *
 * <p>A reference model ({@link Ref}) parses every batch from guest RAM as the
 * specification and the device's documented validation say a device must,
 * and predicts, entry by entry, which is the first malformed chain (from
 * there the device must be broken: NEEDS_RESET with a config interrupt, and
 * nothing after it executed), and for every entry before it the status, the
 * used length and the disk writes. Checked after each batch: the device broke
 * exactly when the model says; a batch the model calls valid completed with
 * exactly the predicted used entries (id and length) and status bytes; and
 * every sector a predicted write covers holds one of the contents that the
 * predicted writes (or discards) could leave, read from the image file, while
 * periodically and at the end the whole image equals the model, so no write
 * landed anywhere a valid request would not have written. A broken device is
 * reset and re-initialised (with random features, served from the main loop,
 * one IOThread, or two IOThreads with requests crossing) and the run goes on;
 * occasionally a healthy device is reset with a batch in flight. No exception
 * may escape any event loop ({@code MainLoop.failures()} stays empty).
 *
 * <p>Guest RAM discipline that keeps the prediction exact: device-readable
 * buffers, descriptor tables and indirect tables live in each entry's
 * readable half, device-writable buffers in its writable half (or outside
 * RAM), so nothing the device writes is ever parsed again.
 */
class VirtioBlkFuzzTest {
    static final int REQUESTS = 100_000;
    static final int QUEUES = 2;
    static final int QSIZE = 128;
    static final long DISK = 1L << 20;
    static final long CAPACITY = DISK / SECTOR;
    static final long AREA_BASE = 0x40_0000L;
    static final int AREA = 64 * 1024;
    static final int HALF = AREA / 2;
    static final int MAX_BATCH = 48;
    static final long RAM = BlkMachine.RAM_BYTES;

    @TempDir
    Path dir;

    @Test
    void randomDescriptorsChainsAndHeadersNeverEscapeOrCorruptTheDisk() throws Exception {
        long seed = Long.getLong("vblk.fuzz.seed", 0xf022_0004L);
        System.out.println("VirtioBlkFuzzTest seed " + seed + " (-Dvblk.fuzz.seed=" + seed + " replays it)");
        long t0 = System.nanoTime();
        // The image on tmpfs when there is one: FLUSH is fdatasync(2), which on a busy disk costs milliseconds
        Path shm = Path.of("/dev/shm");
        Path where = Files.isDirectory(shm) && Files.isWritable(shm) ? Files.createTempDirectory(shm, "vblk-fuzz") : dir;
        try (BlkMachine m = new BlkMachine(new Spec().serving(Serving.SPLIT).queues(QUEUES).queueSize(QSIZE)
                .diskBytes(DISK).seed(seed), where);
                FileChannel image = FileChannel.open(m.image, StandardOpenOption.READ)) {
            Fuzzer f = new Fuzzer(m, image, seed);
            try {
                f.run();
            } catch (Throwable e) {
                throw new AssertionError("fuzz seed " + seed + ", session " + f.sessions + ", batch " + f.batches
                        + " (" + f.requests + " requests made): " + e.getMessage(), e);
            }
            assertTrue(m.loop.failures().isEmpty(), () -> "seed " + seed + ": " + m.loop.failures());
            System.out.printf("VirtioBlkFuzzTest seed %d: %d requests in %d batches, %d sessions; broken %d times "
                    + "(predicted every time), %d early resets; statuses OK %d IOERR %d UNSUPP %d; %.1f s%n", seed,
                    f.requests, f.batches, f.sessions, f.breaks, f.earlyResets, f.statusCount[0], f.statusCount[1],
                    f.statusCount[2], (System.nanoTime() - t0) / 1e9);
            System.out.println("VirtioBlkFuzzTest breaks by reason: " + f.reasons);
            System.out.printf("VirtioBlkFuzzTest time: generate+predict %.1f s, wait %.1f s, reset %.1f s, init %.1f s, "
                    + "disk %.1f s%n", f.nanos[0] / 1e9, f.nanos[1] / 1e9, f.nanos[2] / 1e9, f.nanos[3] / 1e9,
                    f.nanos[4] / 1e9);
            assertEquals(REQUESTS, f.requests);
            assertTrue(f.breaks > 100, "the fuzz broke the device only " + f.breaks + " times");
            assertTrue(f.statusCount[0] > 10_000 && f.statusCount[1] > 1_000 && f.statusCount[2] > 1_000,
                    "too few requests of some outcome: " + Arrays.toString(f.statusCount));
        } finally {
            if (where != dir) {
                Files.deleteIfExists(where.resolve("disk.raw"));
                Files.deleteIfExists(where);
            }
        }
    }

    // ======================================================================== the reference model

    /** What the model predicts for one avail entry. */
    static final class Verdict {
        /** Null for a well-formed chain; otherwise why the device must break on it. */
        String malformed;
        int head;
        int status;
        int usedLen;
        long statusGpa;
        /** Device-writable buffers of the chain: {gpa, len}. */
        List<long[]> writable = new ArrayList<>();
        /** Disk effect: 0 none, 1 write (data), 2 write zeroes, 3 discard. */
        int effect;
        long sector;
        long sectors;
        byte[] data;
        String describe;
    }

    /**
     * The device side of the specification, written independently of the
     * device: virtqueue_pop's chain walk (virtio 1.2 2.7.5, with this
     * device's documented limits) and virtio-blk's request handling (5.2.6).
     */
    static final class Ref {
        final GuestMemory mem;
        final int size;
        final long desc;
        final long avail;
        final boolean indirectOk;
        final boolean discardOk;
        final boolean zeroesOk;

        Ref(GuestMemory mem, GuestRing vq, long features) {
            this.mem = mem;
            this.size = vq.size;
            this.desc = vq.desc;
            this.avail = vq.avail;
            this.indirectOk = (features & VirtioFeatures.INDIRECT_DESC) != 0;
            this.discardOk = (features & VirtioBlkAbi.F_DISCARD) != 0;
            this.zeroesOk = (features & VirtioBlkAbi.F_WRITE_ZEROES) != 0;
        }

        /** Predicts entries [lastAvail, availIdx): stops after the first malformed one. */
        List<Verdict> predict(int lastAvail, int availIdx) {
            List<Verdict> out = new ArrayList<>();
            int pending = (availIdx - lastAvail) & 0xffff;
            if (pending > size) {
                Verdict v = new Verdict();
                v.malformed = "avail.idx ran " + pending + " entries ahead of a queue of " + size;
                out.add(v);
                return out;
            }
            for (int i = 0; i < pending; i++) {
                int head = mem.readU16(avail + VirtioRing.AVAIL_RING + 2L * ((lastAvail + i) & (size - 1)));
                Verdict v = entry(head);
                out.add(v);
                if (v.malformed != null) {
                    break;
                }
            }
            return out;
        }

        private Verdict entry(int head) {
            Verdict v = new Verdict();
            v.head = head;
            List<long[]> segs = new ArrayList<>(); // {gpa, len, writable}
            String bad = walk(head, segs);
            if (bad != null) {
                v.malformed = bad;
                return v;
            }
            long readable = 0;
            long writable = 0;
            for (long[] s : segs) {
                if (s[2] != 0) {
                    writable += s[1];
                    v.writable.add(new long[] {s[0], s[1]});
                } else {
                    readable += s[1];
                }
            }
            if (writable < 1) {
                v.malformed = "no device-writable status byte";
                return v;
            }
            if (readable < 16) {
                v.malformed = "header of " + readable + " bytes";
                return v;
            }
            byte[] in = gather(segs, 0, (int) Math.min(readable, 16 + 32));
            int type = (int) le(in, 0, 4);
            long sector = le(in, 8, 8);
            long[] last = segs.get(segs.size() - 1);
            v.statusGpa = last[0] + last[1] - 1;
            v.usedLen = 1;
            v.describe = "type " + Integer.toUnsignedString(type) + " sector " + Long.toUnsignedString(sector)
                    + " readable " + readable + " writable " + writable;
            switch (type) {
                case VirtioBlkAbi.T_IN -> {
                    long bytes = writable - 1;
                    if (rangeOk(sector, bytes)) {
                        v.status = VirtioBlkAbi.S_OK;
                        v.usedLen = (int) bytes + 1;
                    } else {
                        v.status = VirtioBlkAbi.S_IOERR;
                    }
                }
                case VirtioBlkAbi.T_OUT -> {
                    long bytes = readable - 16;
                    if (rangeOk(sector, bytes)) {
                        v.status = VirtioBlkAbi.S_OK;
                        v.effect = bytes > 0 ? 1 : 0;
                        v.sector = sector;
                        v.sectors = bytes / SECTOR;
                        v.data = gather(segs, 16, (int) bytes);
                    } else {
                        v.status = VirtioBlkAbi.S_IOERR;
                    }
                }
                case VirtioBlkAbi.T_FLUSH -> v.status = VirtioBlkAbi.S_OK;
                case VirtioBlkAbi.T_GET_ID -> {
                    v.status = VirtioBlkAbi.S_OK;
                    v.usedLen = (int) Math.min(VirtioBlkAbi.SERIAL_BYTES, writable - 1) + 1;
                }
                case VirtioBlkAbi.T_DISCARD, VirtioBlkAbi.T_WRITE_ZEROES -> discardOrZeroes(v, type, segs, readable);
                default -> v.status = VirtioBlkAbi.S_UNSUPP;
            }
            return v;
        }

        private void discardOrZeroes(Verdict v, int type, List<long[]> segs, long readable) {
            boolean zeroes = type == VirtioBlkAbi.T_WRITE_ZEROES;
            if (!(zeroes ? zeroesOk : discardOk)) {
                v.status = VirtioBlkAbi.S_UNSUPP;
                return;
            }
            long seg = readable - 16;
            if (seg != 16) {
                // max_discard_seg = max_write_zeroes_seg = 1: several segments are an error, no segment or a
                // partial one is not a request the device understands
                v.status = seg == 0 || seg % 16 != 0 ? VirtioBlkAbi.S_UNSUPP : VirtioBlkAbi.S_IOERR;
                return;
            }
            byte[] d = gather(segs, 16, 16);
            long sector = le(d, 0, 8);
            long num = le(d, 8, 4);
            long flags = le(d, 12, 4);
            v.describe += " segment {sector " + Long.toUnsignedString(sector) + ", " + num + " sectors, flags 0x"
                    + Long.toHexString(flags) + "}";
            if ((flags & ~1L) != 0 || (!zeroes && flags != 0)) {
                v.status = VirtioBlkAbi.S_UNSUPP;
                return;
            }
            if (num > VirtioBlkAbi.MAX_DISCARD_SECTORS || !rangeOk(sector, num * SECTOR)) {
                v.status = VirtioBlkAbi.S_IOERR;
                return;
            }
            v.status = VirtioBlkAbi.S_OK;
            v.effect = num == 0 ? 0 : zeroes ? 2 : 3;
            v.sector = sector;
            v.sectors = num;
        }

        static boolean rangeOk(long sector, long bytes) {
            if (bytes % SECTOR != 0 || sector < 0) {
                return false;
            }
            return sector <= CAPACITY && bytes / SECTOR <= CAPACITY - sector;
        }

        /** The chain walk; null when well formed, else the reason the queue must break. */
        private String walk(int head, List<long[]> segs) {
            if (head >= size) {
                return "head " + head + " past the table";
            }
            long table = desc;
            long tableLen = size;
            int i = head;
            long steps = 0;
            boolean indirect = false;
            long total = 0;
            boolean sawWritable = false;
            for (;;) {
                long d = table + (long) VirtioRing.DESC_SIZE * i;
                long addr = mem.readU64(d + VirtioRing.DESC_ADDR);
                long len = mem.readU32(d + VirtioRing.DESC_LEN);
                int flags = mem.readU16(d + VirtioRing.DESC_FLAGS);
                int next = mem.readU16(d + VirtioRing.DESC_NEXT);
                if (++steps > tableLen) {
                    return "chain longer than its table (a loop)";
                }
                if ((flags & VirtioRing.DESC_F_INDIRECT) != 0) {
                    if (indirect) {
                        return "nested indirect";
                    }
                    if (!indirectOk) {
                        return "indirect without VIRTIO_F_INDIRECT_DESC";
                    }
                    if ((flags & VirtioRing.DESC_F_NEXT) != 0) {
                        return "INDIRECT with NEXT";
                    }
                    if (len == 0 || len % 16 != 0) {
                        return "indirect table of " + len + " bytes";
                    }
                    if (mem.translate(addr, len) < 0) {
                        return "indirect table outside RAM";
                    }
                    table = addr;
                    tableLen = len / 16;
                    i = 0;
                    steps = 0;
                    indirect = true;
                    continue;
                }
                if (len == 0) {
                    return "zero-length buffer";
                }
                total += len;
                if (len > Integer.MAX_VALUE || total > 0xffff_ffffL) {
                    return "chain too long";
                }
                if (mem.translate(addr, len) < 0) {
                    return "buffer outside RAM";
                }
                boolean w = (flags & VirtioRing.DESC_F_WRITE) != 0;
                if (!w && sawWritable) {
                    return "readable after writable";
                }
                if (segs.size() >= size) {
                    return "more buffers than the queue size";
                }
                sawWritable |= w;
                segs.add(new long[] {addr, len, w ? 1 : 0});
                if ((flags & VirtioRing.DESC_F_NEXT) == 0) {
                    return null;
                }
                if (next >= tableLen) {
                    return "next " + next + " past the table";
                }
                i = next;
            }
        }

        /** {@code n} bytes of the readable part of the chain from {@code offset}. */
        private byte[] gather(List<long[]> segs, long offset, int n) {
            byte[] out = new byte[n];
            int done = 0;
            long skip = offset;
            for (long[] s : segs) {
                if (s[2] != 0 || done == n) {
                    break;
                }
                if (skip >= s[1]) {
                    skip -= s[1];
                    continue;
                }
                int c = (int) Math.min(s[1] - skip, n - done);
                mem.read(s[0] + skip, out, done, c);
                done += c;
                skip = 0;
            }
            return done == n ? out : Arrays.copyOf(out, done);
        }

        static long le(byte[] b, int off, int n) {
            long v = 0;
            for (int i = n - 1; i >= 0; i--) {
                v = v << 8 | (off + i < b.length ? b[off + i] & 0xff : 0);
            }
            return v;
        }
    }

    // ======================================================================== the fuzzer (guest) side

    static final class Fuzzer {
        final BlkMachine m;
        final FileChannel image;
        final long seed;
        final Random r;
        final GuestMemory mem;
        final BlkDriver g;
        final byte[] model;
        int requests;
        int batches;
        int sessions;
        int breaks;
        int earlyResets;
        final long[] statusCount = new long[3];
        /** Time spent generating and predicting, waiting for the device, resetting, initialising, checking the disk. */
        final long[] nanos = new long[5];
        /** Why the device broke, by kind. */
        final Map<String, Integer> reasons = new TreeMap<>();
        private boolean live;
        /** Whether this batch may hold malformed chains; a clean one holds requests with random contents only. */
        private boolean dirty;
        private final int[] lastAvail = new int[QUEUES];
        private int batchesLeftInSession;

        Fuzzer(BlkMachine m, FileChannel image, long seed) {
            this.m = m;
            this.image = image;
            this.seed = seed;
            this.r = new Random(seed);
            this.mem = m.mem;
            this.g = m.newDriver();
            this.model = m.initialContent.clone();
        }

        void run() {
            while (requests < REQUESTS) {
                if (!live) {
                    long t = System.nanoTime();
                    newSession();
                    nanos[3] += System.nanoTime() - t;
                }
                batch();
                if (live && --batchesLeftInSession == 0) {
                    reset(); // a healthy device reset with nothing in flight
                    live = false;
                }
                if (batches % 16 == 0) {
                    checkWholeDisk("between batches " + (batches - 15) + " and " + batches);
                    if (!m.loop.failures().isEmpty()) {
                        throw new AssertionError("event-loop failures: " + m.loop.failures());
                    }
                }
            }
            if (live) {
                reset();
            }
            checkWholeDisk("at the end");
        }

        private void newSession() {
            Serving[] modes = Serving.values();
            m.serveWith(modes[r.nextInt(modes.length)]);
            long wanted = BlkDriver.LINUX_FEATURES;
            if (r.nextInt(2) == 0) {
                wanted &= ~VirtioFeatures.EVENT_IDX;
            }
            if (r.nextInt(4) == 0) {
                wanted &= ~VirtioFeatures.INDIRECT_DESC;
            }
            if (r.nextInt(5) == 0) {
                wanted &= ~VirtioBlkAbi.F_DISCARD;
            }
            if (r.nextInt(5) == 0) {
                wanted &= ~VirtioBlkAbi.F_WRITE_ZEROES;
            }
            g.initLinux(wanted);
            Arrays.fill(lastAvail, 0);
            live = true;
            sessions++;
            batchesLeftInSession = 20 + r.nextInt(200);
        }

        // ------------------------------------------------------------------ one batch

        private void batch() {
            batches++;
            dirty = r.nextInt(5) == 0;
            int q = r.nextInt(QUEUES);
            GuestRing vq = g.vqs[q];
            int n = Math.min(1 + r.nextInt(MAX_BATCH), REQUESTS - requests);
            Gen gen = new Gen(vq);
            long tg = System.nanoTime();
            int made = gen.build(n);
            requests += made;
            // read before publishing: an IOThread that busy-polls the ring may consume the batch at once
            int usedBefore = vq.usedIdx();
            int[] oldNew;
            if (dirty && r.nextInt(100) == 0) {
                // avail.idx runs more than a queue ahead of what the device has seen
                oldNew = new int[] {vq.availIdx(), (vq.availIdx() + QSIZE + 1 + r.nextInt(1000)) & 0xffff};
                java.lang.invoke.VarHandle.releaseFence();
                vq.setAvailIdxRaw(oldNew[1]);
            } else {
                oldNew = vq.publish();
            }
            int availNow = oldNew[1];
            Ref ref = new Ref(mem, vq, g.features);
            List<Verdict> vs = ref.predict(lastAvail[q], availNow);
            Verdict lastV = vs.isEmpty() ? null : vs.get(vs.size() - 1);
            boolean expectBreak = lastV != null && lastV.malformed != null;
            int valid = expectBreak ? vs.size() - 1 : vs.size();
            nanos[0] += System.nanoTime() - tg;
            boolean early = !expectBreak && r.nextInt(50) == 0;

            boolean extraKick = r.nextInt(100) == 0; // drawn whatever the device's avail_event says: reproducible
            if (expectBreak || early || extraKick || vq.kickNeeded(oldNew)) {
                g.kick(q);
            }
            if (early) {
                earlyResets++;
                reset();
                live = false;
                checkDisk(vs, valid, true, "batch " + batches + " reset early");
                return;
            }
            int target = (usedBefore + valid) & 0xffff;
            long tw = System.nanoTime();
            waitFor(vq, q, expectBreak, target, vs);
            nanos[1] += System.nanoTime() - tw;
            boolean broken = g.pci.needsReset();
            String ctx = "batch " + batches + " on vq" + q + " (" + made + " entries, " + m.serving() + ", features 0x"
                    + Long.toHexString(g.features) + ")";
            if (expectBreak != broken) {
                throw new AssertionError(ctx + ": the model says " + (expectBreak ? "entry " + (vs.size() - 1)
                        + " is malformed (" + lastV.malformed + ")" : "every entry is valid") + " but the device is "
                        + (broken ? "" : "not ") + "broken; verdicts " + describe(vs));
            }
            checkUsed(vq, usedBefore, vs, valid, !expectBreak, ctx);
            if (expectBreak) {
                breaks++;
                reasons.merge(lastV.malformed.replaceAll("[0-9]+", "N"), 1, Integer::sum);
                reset();
                live = false;
            } else {
                lastAvail[q] = availNow;
                checkStatuses(vs, valid, ctx);
            }
            for (int i = 0; i < valid; i++) {
                statusCount[vs.get(i).status]++;
            }
            checkDisk(vs, valid, false, ctx);
        }

        /** Waits, by interrupts, until the device broke or published the used entries of the valid batch. */
        private void waitFor(GuestRing vq, int q, boolean expectBreak, int target, List<Verdict> vs) {
            for (;;) {
                if (g.pci.needsReset()) {
                    return;
                }
                if (vq.usedIdx() == target && !expectBreak) {
                    return;
                }
                if (expectBreak && ((vq.usedIdx() - target) & 0xffff) < 0x8000 && vq.usedIdx() != target) {
                    return; // more used entries than valid ones: the device went past the malformed entry
                }
                if (vq.eventIdx()) {
                    vq.setUsedEvent((target - 1) & 0xffff);
                } else {
                    mem.writeU16(vq.avail, 0);
                }
                java.lang.invoke.VarHandle.fullFence();
                if (g.pci.needsReset() || vq.usedIdx() == target) {
                    continue;
                }
                m.irq.awaitAny(BlkMachine.DEADLINE, "vq" + q + " to reach used.idx " + target + " or NEEDS_RESET"
                        + " (expected " + (expectBreak ? "NEEDS_RESET" : "completion") + "); guest view: "
                        + ringState(vq) + "; verdicts " + describe(vs));
            }
        }

        private String ringState(GuestRing vq) {
            return String.format("avail.idx %d avail.flags 0x%x used_event %d used.idx %d used.flags 0x%x "
                    + "avail_event %d event_idx %s", mem.readU16(vq.avail + VirtioRing.AVAIL_IDX), mem.readU16(vq.avail + VirtioRing.AVAIL_FLAGS),
                    mem.readU16(vq.avail + VirtioRing.usedEventOffset(vq.size)), vq.usedIdx(), vq.usedFlags(),
                    vq.availEvent(), vq.eventIdx());
        }

        private void checkUsed(GuestRing vq, int usedBefore, List<Verdict> vs, int valid, boolean complete,
                String ctx) {
            int now = vq.usedIdx();
            int count = (now - usedBefore) & 0xffff;
            if (count > valid || (complete && count != valid)) {
                throw new AssertionError(ctx + ": " + count + " used entries for " + valid + " valid chains");
            }
            Map<Long, Integer> expected = new HashMap<>();
            for (int i = 0; i < valid; i++) {
                expected.merge(((long) vs.get(i).head << 32) | vs.get(i).usedLen, 1, Integer::sum);
            }
            for (int i = 0; i < count; i++) {
                long e = vq.used + VirtioRing.USED_RING + (long) VirtioRing.USED_ELEM_SIZE * ((usedBefore + i) & (vq.size - 1));
                long key = (mem.readU32(e) << 32) | mem.readU32(e + 4);
                Integer left = expected.get(key);
                if (left == null || left == 0) {
                    throw new AssertionError(ctx + ": used entry {id " + (key >>> 32) + ", len " + (key & 0xffffffffL)
                            + "} matches no valid chain; verdicts " + describe(vs));
                }
                expected.put(key, left - 1);
            }
        }

        /** Status bytes no other chain of the batch may have written over. */
        private void checkStatuses(List<Verdict> vs, int valid, String ctx) {
            for (int i = 0; i < valid; i++) {
                Verdict v = vs.get(i);
                boolean exclusive = true;
                for (int j = 0; j < valid && exclusive; j++) {
                    Verdict o = vs.get(j);
                    if (o.head == v.head) {
                        continue; // the same chain again: the same status
                    }
                    for (long[] w : o.writable) {
                        if (v.statusGpa >= w[0] && v.statusGpa < w[0] + w[1]) {
                            exclusive = false;
                            break;
                        }
                    }
                }
                if (exclusive) {
                    int got = mem.readU8(v.statusGpa);
                    if (got != v.status) {
                        throw new AssertionError(ctx + ": entry " + i + " (" + v.describe + ") status " + got
                                + ", expected " + v.status);
                    }
                }
            }
        }

        // ------------------------------------------------------------------ the disk oracle

        /**
         * Every sector a predicted write covers must hold one of the contents the
         * predicted writes could leave (old content too if the batch may not have
         * run, or only discards covered it); the model takes what is there.
         */
        private void checkDisk(List<Verdict> vs, int valid, boolean mayNotHaveRun, String ctx) {
            long t = System.nanoTime();
            try {
                checkDiskNow(vs, valid, mayNotHaveRun, ctx);
            } finally {
                nanos[4] += System.nanoTime() - t;
            }
        }

        private void reset() {
            long t = System.nanoTime();
            g.reset();
            nanos[2] += System.nanoTime() - t;
        }

        private void checkDiskNow(List<Verdict> vs, int valid, boolean mayNotHaveRun, String ctx) {
            TreeMap<Long, List<byte[]>> cands = new TreeMap<>();
            Map<Long, Boolean> onlyDiscards = new HashMap<>();
            for (int i = 0; i < valid; i++) {
                Verdict v = vs.get(i);
                if (v.effect == 0) {
                    continue;
                }
                for (long s = 0; s < v.sectors; s++) {
                    long sec = v.sector + s;
                    byte[] c = v.effect == 1 ? Arrays.copyOfRange(v.data, (int) s * SECTOR, (int) (s + 1) * SECTOR)
                            : new byte[SECTOR];
                    cands.computeIfAbsent(sec, k -> new ArrayList<>()).add(c);
                    onlyDiscards.merge(sec, v.effect == 3, Boolean::logicalAnd);
                }
            }
            if (cands.isEmpty()) {
                return;
            }
            long first = cands.firstKey();
            byte[] span = read(first * SECTOR, (int) ((cands.lastKey() + 1 - first) * SECTOR));
            for (Map.Entry<Long, List<byte[]>> e : cands.entrySet()) {
                long sec = e.getKey();
                int at = (int) (sec - first) * SECTOR;
                byte[] got = Arrays.copyOfRange(span, at, at + SECTOR);
                boolean ok = false;
                for (byte[] c : e.getValue()) {
                    ok |= Arrays.equals(c, got);
                }
                int off = (int) (sec * SECTOR);
                if (!ok && (mayNotHaveRun || onlyDiscards.get(sec))) {
                    ok = Arrays.equals(got, 0, SECTOR, model, off, off + SECTOR);
                }
                if (!ok) {
                    throw new AssertionError(ctx + ": sector " + sec + " holds none of the " + e.getValue().size()
                            + " contents the batch's valid requests could leave; verdicts " + describe(vs));
                }
                System.arraycopy(got, 0, model, off, SECTOR);
            }
        }

        private void checkWholeDisk(String when) {
            byte[] disk = read(0, (int) DISK);
            if (!Arrays.equals(disk, model)) {
                int i = Arrays.mismatch(disk, model);
                throw new AssertionError("the image differs from the model " + when + " at sector " + i / SECTOR
                        + " byte " + i % SECTOR + ": a write landed where no valid request wrote");
            }
        }

        private byte[] read(long off, int len) {
            ByteBuffer b = ByteBuffer.allocate(len);
            try {
                while (b.hasRemaining()) {
                    if (image.read(b, off + b.position()) < 0) {
                        break;
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return b.array();
        }

        static String describe(List<Verdict> vs) {
            StringBuilder sb = new StringBuilder("[");
            for (int i = 0; i < vs.size(); i++) {
                Verdict v = vs.get(i);
                sb.append(i == 0 ? "" : "; ").append(i).append(": head ").append(v.head).append(' ');
                if (v.malformed != null) {
                    sb.append("MALFORMED ").append(v.malformed);
                } else {
                    sb.append(v.describe).append(" -> status ").append(v.status).append(" len ").append(v.usedLen);
                }
            }
            return sb.append(']').toString();
        }

        // ------------------------------------------------------------------ the generator

        /** Writes one batch of chains into guest RAM and the avail ring of {@code vq}. */
        final class Gen {
            final GuestRing vq;
            final List<Integer> freeDesc = new ArrayList<>();
            final List<Integer> heads = new ArrayList<>();
            long rdCur;
            long rdEnd;
            long wrCur;
            long wrEnd;

            Gen(GuestRing vq) {
                this.vq = vq;
                for (int i = 0; i < vq.size; i++) {
                    freeDesc.add(i);
                }
                java.util.Collections.shuffle(freeDesc, r);
            }

            int build(int n) {
                for (int i = 0; i < n; i++) {
                    long area = AREA_BASE + (long) AREA * i;
                    rdCur = area;
                    rdEnd = area + HALF;
                    wrCur = area + HALF;
                    wrEnd = area + AREA;
                    int head;
                    int p = r.nextInt(1000);
                    int f = fault();
                    if (p < 15 && !heads.isEmpty()) {
                        head = heads.get(r.nextInt(heads.size())); // the same chain again
                    } else if (f < 5) {
                        head = r.nextInt(f < 2 ? 0x10000 : vq.size); // whatever descriptor (or none) that names
                    } else if (f < 35) {
                        head = randomChain();
                    } else {
                        head = request();
                    }
                    if (head < 0) {
                        return i; // out of descriptors: the batch ends here
                    }
                    heads.add(head);
                    vq.putAvail(head);
                }
                return n;
            }

            /** A buffer in the readable half holding {@code content}. */
            long readable(byte[] content) {
                long a = rdCur;
                if (a + content.length + 64 > rdEnd) {
                    return -1;
                }
                mem.write(a, content);
                rdCur = (a + content.length + 8 + r.nextInt(32) + 7) & ~7L;
                return a;
            }

            long readableSpace(int len) {
                long a = rdCur;
                if (a + len + 64 > rdEnd) {
                    return -1;
                }
                rdCur = (a + len + 15) & ~15L;
                return a;
            }

            /** A buffer in the writable half; its last byte (a status byte, perhaps) is preset to 0xff. */
            long writable(int len) {
                long a = wrCur;
                if (len < 1 || a + len + 64 > wrEnd) {
                    return -1;
                }
                mem.writeU8(a + len - 1, 0xff);
                wrCur = (a + len + 8 + r.nextInt(32) + 7) & ~7L;
                return a;
            }

            long outsideRam(long len) {
                return switch (r.nextInt(4)) {
                    case 0 -> RAM + r.nextInt(1 << 20);
                    case 1 -> RAM - Math.max(1, len / 2); // straddles the end of RAM
                    case 2 -> r.nextLong() | Long.MIN_VALUE;
                    default -> -1L - r.nextInt(100); // wraps around 2^64
                };
            }

            /** A descriptor segment about to be written. */
            final class D {
                long addr;
                long len;
                int flags;
                int next;
                boolean writable;

                D(long addr, long len, boolean writable) {
                    this.addr = addr;
                    this.len = len;
                    this.writable = writable;
                    this.flags = writable ? VirtioRing.DESC_F_WRITE : 0;
                }
            }

            long sectorFor(long sectors) {
                return switch (r.nextInt(20)) {
                    case 0 -> CAPACITY - r.nextInt(4);
                    case 1 -> CAPACITY + r.nextInt(8);
                    case 2 -> r.nextLong();
                    case 3 -> 0;
                    default -> (long) (r.nextDouble() * Math.max(1, CAPACITY - sectors + 1));
                };
            }

            int dataLen() {
                return switch (r.nextInt(12)) {
                    case 0 -> 1 + r.nextInt(2048);
                    case 1 -> 0;
                    default -> SECTOR * (1 + (r.nextInt(4) == 0 ? r.nextInt(40) : r.nextInt(8)));
                };
            }

            /** A mutated request: returns its head, or -1 if descriptors ran out. */
            int request() {
                int pick = r.nextInt(100);
                int type = pick < 30 ? VirtioBlkAbi.T_IN : pick < 61 ? VirtioBlkAbi.T_OUT : pick < 62 ? VirtioBlkAbi.T_FLUSH
                        : pick < 67 ? VirtioBlkAbi.T_GET_ID : pick < 79 ? VirtioBlkAbi.T_DISCARD
                        : pick < 95 ? VirtioBlkAbi.T_WRITE_ZEROES : r.nextInt(4) == 0 ? r.nextInt() : r.nextInt(20);
                List<D> ds = new ArrayList<>();
                byte[] hdr = new byte[16];
                int dlen = dataLen();
                long sector = sectorFor(Math.max(1, dlen / SECTOR));
                put(hdr, 0, type, 4);
                put(hdr, 4, r.nextInt(10) == 0 ? r.nextInt() : 0, 4); // reserved: ignored
                put(hdr, 8, sector, 8);
                int hdrLen = fault() < 5 ? r.nextInt(16) : 16;
                if (hdrLen > 0) {
                    int cut = r.nextInt(5) == 0 ? 1 + r.nextInt(Math.max(1, hdrLen - 1)) : hdrLen;
                    addReadable(ds, Arrays.copyOfRange(hdr, 0, cut));
                    if (cut < hdrLen) {
                        addReadable(ds, Arrays.copyOfRange(hdr, cut, hdrLen));
                    }
                }
                if (type == VirtioBlkAbi.T_OUT) {
                    byte[] data = new byte[dlen];
                    r.nextBytes(data);
                    int pieces = 1 + r.nextInt(3);
                    int o = 0;
                    for (int k = 0; k < pieces && o < dlen; k++) {
                        int len = k == pieces - 1 ? dlen - o : 1 + r.nextInt(dlen - o);
                        addReadable(ds, Arrays.copyOfRange(data, o, o + len));
                        o += len;
                    }
                } else if (type == VirtioBlkAbi.T_DISCARD || type == VirtioBlkAbi.T_WRITE_ZEROES) {
                    int segs = switch (r.nextInt(20)) {
                        case 0 -> 0;
                        case 1 -> 2;
                        default -> 1;
                    };
                    byte[] body = new byte[r.nextInt(30) == 0 ? 8 : 16 * segs];
                    for (int s = 0; s + 16 <= body.length; s += 16) {
                        long num = switch (r.nextInt(20)) {
                            case 0 -> 0;
                            case 1 -> VirtioBlkAbi.MAX_DISCARD_SECTORS + 1L + r.nextInt(10);
                            case 2 -> r.nextInt() & 0xffff_ffffL;
                            default -> 1 + r.nextInt(r.nextInt(4) == 0 ? 300 : 16);
                        };
                        int flags = switch (r.nextInt(20)) {
                            case 0 -> r.nextInt();
                            case 1, 2, 3, 4, 5, 6 -> (int) VirtioBlkAbi.WZ_FLAG_UNMAP;
                            default -> 0;
                        };
                        if (type == VirtioBlkAbi.T_DISCARD && flags == VirtioBlkAbi.WZ_FLAG_UNMAP && r.nextInt(3) != 0) {
                            flags = 0;
                        }
                        System.arraycopy(BlkHeaders.dwzSegment(sectorFor(num), num, flags), 0, body, s,
                                VirtioBlkAbi.DWZ_SEGMENT_SIZE);
                    }
                    if (body.length > 0) {
                        addReadable(ds, body);
                    }
                } else if (r.nextInt(40) == 0) {
                    byte[] junk = new byte[1 + r.nextInt(64)];
                    r.nextBytes(junk);
                    addReadable(ds, junk); // extra readable bytes after the header
                }
                // the device-writable part: data (IN, GET_ID), then the status byte
                int wdata = type == VirtioBlkAbi.T_IN ? dlen : type == VirtioBlkAbi.T_GET_ID ? r.nextInt(40)
                        : r.nextInt(30) == 0 ? 1 + r.nextInt(100) : 0;
                boolean statusAlone = wdata == 0 || r.nextBoolean();
                int pieces = 1 + r.nextInt(3);
                int o = 0;
                for (int k = 0; k < pieces && o < wdata; k++) {
                    int len = k == pieces - 1 ? wdata - o : 1 + r.nextInt(wdata - o);
                    boolean last = o + len == wdata;
                    addWritable(ds, len + (last && !statusAlone ? 1 : 0));
                    o += len;
                }
                if (statusAlone && fault() >= 5) { // sometimes no status byte at all
                    addWritable(ds, 1 + (r.nextInt(20) == 0 ? r.nextInt(16) : 0));
                }
                if (ds.isEmpty() || ds.stream().anyMatch(d -> d.addr < 0)) {
                    return -1;
                }
                mutate(ds);
                return place(ds);
            }

            void addReadable(List<D> ds, byte[] content) {
                ds.add(new D(readable(content), content.length, false));
            }

            void addWritable(List<D> ds, int len) {
                ds.add(new D(writable(len), len, true));
            }

            /** Rare single faults in a request's descriptors. */
            void mutate(List<D> ds) {
                int p = fault();
                D d = ds.get(r.nextInt(ds.size()));
                if (p < 8) { // flip WRITE: the buffer moves to the half that matches
                    d.writable = !d.writable;
                    d.flags ^= VirtioRing.DESC_F_WRITE;
                    d.addr = d.writable ? writable((int) d.len) : readableSpace((int) d.len);
                    if (d.addr < 0) {
                        d.addr = outsideRam(d.len);
                    }
                } else if (p < 13) {
                    d.len = 0;
                } else if (p < 20) {
                    d.addr = outsideRam(d.len);
                } else if (p < 24) {
                    d.len = r.nextLong() & 0xffff_ffffL; // probably outside RAM or past the chain limit
                } else if (p < 60) {
                    d.flags |= (1 + r.nextInt(0x1fff)) << 3; // unknown flag bits: ignored
                }
            }

            /** Writes the descriptors, direct or through an indirect table; returns the head or -1. */
            int place(List<D> ds) {
                boolean indirectOk = (g.features & VirtioFeatures.INDIRECT_DESC) != 0;
                boolean indirect = (indirectOk ? r.nextInt(4) == 0 : fault() < 20) || ds.size() > freeDesc.size();
                if (indirect) {
                    return placeIndirect(ds);
                }
                int[] ids = new int[ds.size()];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = freeDesc.remove(freeDesc.size() - 1);
                }
                for (int i = 0; i < ids.length; i++) {
                    D d = ds.get(i);
                    boolean more = i + 1 < ids.length;
                    int next = more ? ids[i + 1] : r.nextInt(vq.size);
                    int flags = d.flags | (more ? VirtioRing.DESC_F_NEXT : 0);
                    int p = fault();
                    if (p < 5) {
                        next = r.nextInt(p < 2 ? 0x10000 : vq.size); // a corrupted link
                        flags |= VirtioRing.DESC_F_NEXT;
                    } else if (p < 8 && more) {
                        flags &= ~VirtioRing.DESC_F_NEXT; // the chain ends early
                    }
                    vq.writeDesc(vq.desc, ids[i], d.addr, d.len, flags, next);
                }
                return ids[0];
            }

            int placeIndirect(List<D> ds) {
                if (freeDesc.isEmpty()) {
                    return -1;
                }
                long table = readableSpace(16 * (ds.size() + 1));
                if (table < 0) {
                    return -1;
                }
                for (int i = 0; i < ds.size(); i++) {
                    D d = ds.get(i);
                    boolean more = i + 1 < ds.size();
                    int flags = d.flags | (more ? VirtioRing.DESC_F_NEXT : 0);
                    int next = more ? i + 1 : r.nextInt(4);
                    int p = fault();
                    if (p < 5) {
                        flags |= VirtioRing.DESC_F_INDIRECT; // nested indirect
                    } else if (p < 10) {
                        next = r.nextInt(ds.size() + 3); // a corrupted link, maybe a loop
                        flags |= VirtioRing.DESC_F_NEXT;
                    }
                    vq.writeDesc(table, i, d.addr, d.len, flags, next);
                }
                long len = (long) VirtioRing.DESC_SIZE * ds.size();
                int flags = VirtioRing.DESC_F_INDIRECT | (r.nextInt(10) == 0 ? VirtioRing.DESC_F_WRITE : 0); // WRITE: ignored
                int p = fault();
                long addr = table;
                if (p < 8) {
                    len += 1 + r.nextInt(15); // not a multiple of 16
                } else if (p < 12) {
                    flags |= VirtioRing.DESC_F_NEXT;
                } else if (p < 16) {
                    addr = outsideRam(len);
                } else if (p < 20) {
                    len = (long) VirtioRing.DESC_SIZE * (ds.size() + 1); // one stale entry past the chain: harmless unless linked
                }
                int head = freeDesc.remove(freeDesc.size() - 1);
                vq.writeDesc(vq.desc, head, addr, len, flags, r.nextInt(vq.size));
                return head;
            }

            /** 1 to 4 descriptors with random fields, respecting only the readable/writable RAM discipline. */
            int randomChain() {
                int n = 1 + r.nextInt(4);
                if (freeDesc.size() < n) {
                    return -1;
                }
                int[] ids = new int[n];
                for (int i = 0; i < n; i++) {
                    ids[i] = freeDesc.remove(freeDesc.size() - 1);
                }
                for (int i = 0; i < n; i++) {
                    int flags = r.nextInt(8) == 0 ? r.nextInt(0x10000) : r.nextInt(8);
                    if (i + 1 < n && r.nextInt(4) != 0) {
                        flags |= VirtioRing.DESC_F_NEXT;
                    }
                    long len = r.nextInt(8) == 0 ? r.nextLong() & 0xffff_ffffL : r.nextInt(600);
                    long addr;
                    if ((flags & VirtioRing.DESC_F_INDIRECT) != 0) {
                        long tl = (long) VirtioRing.DESC_SIZE * (1 + r.nextInt(4));
                        addr = r.nextInt(10) == 0 ? outsideRam(tl) : readableRandom((int) tl);
                        len = r.nextInt(4) == 0 ? len : tl;
                        if (mem.isRam(addr, tl)) {
                            for (int k = 0; k < tl / 16; k++) {
                                int f = r.nextInt(16);
                                long l = 1 + r.nextInt(600);
                                long a = (f & VirtioRing.DESC_F_WRITE) != 0 ? writable((int) l) : readableRandom((int) l);
                                vq.writeDesc(addr, k, a < 0 ? outsideRam(l) : a, l, f, r.nextInt(5));
                            }
                        }
                    } else if (r.nextInt(10) == 0 || len > HALF / 2) {
                        addr = outsideRam(len);
                    } else {
                        addr = (flags & VirtioRing.DESC_F_WRITE) != 0 ? writable((int) Math.max(1, len))
                                : readableRandom((int) len);
                        if (addr < 0) {
                            addr = outsideRam(len);
                        }
                    }
                    int next = i + 1 < n && r.nextInt(3) != 0 ? ids[i + 1] : r.nextInt(r.nextInt(8) == 0 ? 0x10000
                            : vq.size);
                    vq.writeDesc(vq.desc, ids[i], addr, len, flags, next);
                }
                return ids[0];
            }

            long readableRandom(int len) {
                byte[] b = new byte[len];
                r.nextBytes(b);
                if (len >= 16 && r.nextBoolean()) {
                    put(b, 0, r.nextInt(16), 4); // a plausible type now and then
                    put(b, 8, r.nextInt((int) CAPACITY + 10), 8);
                }
                return readable(b);
            }
        }

        /** A roll on a 1000 scale for a fault; twice as likely as its threshold says in a dirty batch, never in a clean one. */
        int fault() {
            return dirty ? r.nextInt(500) : 1000;
        }

        static void put(byte[] b, int off, long v, int n) {
            Bytes.putLE(b, off, v, n);
        }
    }
}
