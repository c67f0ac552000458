package io.vblk.testkit;

import static io.vblk.virtio.VirtioPciRegs.*;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import io.vblk.aio.Watchdog;
import io.vblk.testkit.GuestRing.Buf;
import io.vblk.testkit.GuestRing.Used;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioPciTransport;
import io.vblk.virtio.VirtioRing;
import io.vblk.virtio.VirtioStatus;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * A guest's virtio-blk driver for device tests, in two flavours:
 * SeaBIOS's (VERSION_1 only, queue 0 of at most 256 entries, no MSI-X,
 * completion found by polling used.idx, ISR read afterwards) and Linux's
 * (MSI-X with a vector per queue plus config, every queue the device offers
 * with MQ, EVENT_IDX and INDIRECT_DESC when offered, completion by
 * interrupt). It reaches the device only through {@link PciDriver}, guest RAM
 * ({@link GuestRing}) and the {@link Irqchip}; a wait that outlasts the
 * watchdog's deadline is a hang with the watchdog's dump. The ABI is
 * {@link VirtioBlkAbi}'s, the request headers {@link BlkHeaders}'. Requests are laid out in per-queue slots of
 * guest RAM with a chosen segmentation (header split in two, data in
 * pieces, status byte alone or at the end of the last data buffer, indirect
 * tables), so the device's parsing is exercised the way different drivers
 * lay requests out.
 *
 * <p>Each queue is driven by one thread at a time; different queues may be
 * driven by different threads (vCPUs).
 */
public final class BlkDriver {
    public static final long RING_BASE = 0x10_0000L;
    public static final long RING_STRIDE = 0x1_0000L;
    public static final long ARENA_BASE = 0x40_0000L;
    public static final long SLOT = 256 * 1024;
    public static final int SLOTS_PER_QUEUE = 16;
    public static final long ARENA_STRIDE = SLOT * SLOTS_PER_QUEUE;
    public static final int STATUS_UNSET = BlkHeaders.STATUS_UNSET;
    public static final byte IN_FILL = (byte) 0xa5;

    /** Feature bits a Linux driver accepts when offered (virtio_blk.c's feature table plus ring features). */
    public static final long LINUX_FEATURES = VirtioFeatures.VERSION_1 | VirtioFeatures.EVENT_IDX
            | VirtioFeatures.INDIRECT_DESC | VirtioBlkAbi.F_SIZE_MAX | VirtioBlkAbi.F_SEG_MAX | VirtioBlkAbi.F_BLK_SIZE
            | VirtioBlkAbi.F_FLUSH | VirtioBlkAbi.F_TOPOLOGY | VirtioBlkAbi.F_CONFIG_WCE | VirtioBlkAbi.F_MQ
            | VirtioBlkAbi.F_DISCARD | VirtioBlkAbi.F_WRITE_ZEROES | VirtioBlkAbi.F_RO;

    public final PciDriver pci;
    public final GuestMemory mem;
    private final Irqchip irq;
    private final Watchdog watchdog;
    private final Duration deadline;
    public long features;
    public long capacity;
    public boolean polling;
    public boolean msix;
    public GuestRing[] vqs = new GuestRing[0];
    private long[] notify = new long[0];
    private List<Map<Integer, Req>> outstanding = new ArrayList<>();

    /** Probes the function behind {@code transport} (BARs assigned, capabilities walked). */
    public BlkDriver(VirtioPciTransport transport, GuestMemory mem, Irqchip irq, Watchdog watchdog) {
        this.pci = new PciDriver(transport);
        this.mem = mem;
        this.irq = irq;
        this.watchdog = watchdog;
        this.deadline = watchdog.deadline();
        pci.probe();
    }

    // ------------------------------------------------------------------ initialisation

    /** Writes 0 and polls until the status reads 0, as the specification obliges (SeaBIOS and Linux both do). */
    public void reset() {
        pci.setStatus(0);
        long end = System.nanoTime() + deadline.toNanos();
        while (pci.status() != 0) {
            if (System.nanoTime() - end > 0) {
                throw watchdog.hang("device status reads back 0 after reset");
            }
            Thread.onSpinWait();
        }
        for (GuestRing vq : vqs) {
            vq.forgetAll();
        }
        for (Map<Integer, Req> o : outstanding) {
            o.clear();
        }
    }

    /** SeaBIOS's virtio-blk init (src/hw/virtio-blk.c): VERSION_1 only, queue 0 capped at 256, no MSI-X. */
    public void initSeaBios() {
        reset();
        pci.disableMsix();
        int status = VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER;
        pci.setStatus(status);
        long offered = pci.deviceFeatures();
        if ((offered & VirtioFeatures.VERSION_1) == 0) {
            throw new AssertionError("no VERSION_1 offered");
        }
        pci.writeDriverFeatures(VirtioFeatures.VERSION_1);
        status |= VirtioStatus.FEATURES_OK;
        pci.setStatus(status);
        if ((pci.status() & VirtioStatus.FEATURES_OK) == 0) {
            throw new AssertionError("FEATURES_OK refused for VERSION_1 alone");
        }
        features = VirtioFeatures.VERSION_1;
        capacity = pci.deviceConfig(VirtioBlkAbi.CFG_CAPACITY, 8);
        pci.selectQueue(0);
        int size = (int) pci.common(COMMON_Q_SIZE, 2);
        if (size == 0) {
            throw new AssertionError("queue 0 is not available");
        }
        if (size > 256) {
            size = 256;
            pci.common(COMMON_Q_SIZE, 2, size);
        }
        GuestRing vq = ring(size, RING_BASE, false);
        vq.disableInterrupts();
        programQueue(0, vq, NO_VECTOR);
        vqs = new GuestRing[] {vq};
        notify = new long[] {pci.notifyAddr(0)};
        outstanding = List.of(new HashMap<>());
        polling = true;
        msix = false;
        pci.setStatus(status | VirtioStatus.DRIVER_OK);
    }

    /**
     * Linux's virtio_pci_modern probe and virtio_blk init: MSI-X on, features
     * accepted from {@code wanted} when offered, every queue (MQ) with its own
     * vector and the config vector after them, DRIVER_OK.
     */
    public void initLinux(long wanted) {
        reset();
        pci.setStatus(VirtioStatus.ACKNOWLEDGE);
        pci.addStatus(VirtioStatus.DRIVER);
        long offered = pci.deviceFeatures();
        features = offered & wanted;
        pci.writeDriverFeatures(features);
        pci.addStatus(VirtioStatus.FEATURES_OK);
        if ((pci.status() & VirtioStatus.FEATURES_OK) == 0) {
            throw new AssertionError("FEATURES_OK refused for offered features 0x" + Long.toHexString(features));
        }
        capacity = pci.deviceConfig(VirtioBlkAbi.CFG_CAPACITY, 8);
        int nq = (features & VirtioBlkAbi.F_MQ) != 0 ? (int) pci.deviceConfig(VirtioBlkAbi.CFG_NUM_QUEUES, 2) : 1;
        if (nq != (int) pci.common(COMMON_NUMQ, 2) && (features & VirtioBlkAbi.F_MQ) != 0) {
            throw new AssertionError("num_queues " + nq + " differs from the common config's " + pci.common(COMMON_NUMQ, 2));
        }
        pci.enableMsix();
        pci.common(COMMON_MSIX, 2, nq);
        if (pci.common(COMMON_MSIX, 2) != nq) {
            throw new AssertionError("config vector not taken");
        }
        boolean eventIdx = (features & VirtioFeatures.EVENT_IDX) != 0;
        vqs = new GuestRing[nq];
        notify = new long[nq];
        outstanding = new ArrayList<>();
        for (int q = 0; q < nq; q++) {
            pci.selectQueue(q);
            int size = (int) pci.common(COMMON_Q_SIZE, 2);
            vqs[q] = ring(size, RING_BASE + RING_STRIDE * q, eventIdx);
            vqs[q].enableInterrupts();
            programQueue(q, vqs[q], q);
            notify[q] = pci.notifyAddr(q);
            outstanding.add(new HashMap<>());
        }
        polling = false;
        msix = true;
        pci.addStatus(VirtioStatus.DRIVER_OK);
    }

    /** A ring re-armed explicitly ({@link GuestRing#enableInterrupts()} before each wait), as Linux's driver does. */
    private GuestRing ring(int size, long base, boolean eventIdx) {
        GuestRing vq = new GuestRing(mem, base, size);
        vq.setEventIdx(eventIdx);
        vq.setRearmUsedEvent(false);
        return vq;
    }

    private void programQueue(int q, GuestRing vq, int vector) {
        pci.queueAddresses(q, vq);
        if (vector != NO_VECTOR) {
            pci.common(COMMON_Q_MSIX, 2, vector);
            if (pci.common(COMMON_Q_MSIX, 2) != vector) {
                throw new AssertionError("queue " + q + " did not take vector " + vector);
            }
        }
        pci.common(COMMON_Q_ENABLE, 2, 1);
        if (pci.common(COMMON_Q_ENABLE, 2) != 1) {
            throw new AssertionError("queue " + q + " not enabled");
        }
    }

    public boolean has(long feature) {
        return (features & feature) == feature;
    }

    // ------------------------------------------------------------------ requests

    /** How a request is laid out in guest RAM. */
    public record Layout(boolean splitHeader, int outPieces, int inPieces, boolean statusAlone, boolean indirect) {
        public static final Layout SIMPLE = new Layout(false, 1, 1, true, false);
        public static final Layout SCATTERED = new Layout(true, 3, 3, false, false);
        public static final Layout INDIRECT = new Layout(false, 2, 2, true, true);

        public static Layout random(Random r, boolean indirectOk) {
            return new Layout(r.nextInt(4) == 0, 1 + r.nextInt(4), 1 + r.nextInt(4), r.nextBoolean(),
                    indirectOk && r.nextInt(3) == 0);
        }
    }

    /** One request as laid out in guest RAM. */
    public final class Req {
        public final int q;
        public final int type;
        public final long sector;
        public final List<Buf> segs = new ArrayList<>();
        public final List<Buf> inData = new ArrayList<>();
        public final int inBytes;
        public final boolean indirect;
        public final long indirectTable;
        public long statusGpa;
        public int head = -1;
        public Used used;

        Req(int q, int type, long sector, int inBytes, boolean indirect, long indirectTable) {
            this.q = q;
            this.type = type;
            this.sector = sector;
            this.inBytes = inBytes;
            this.indirect = indirect;
            this.indirectTable = indirectTable;
        }

        public int status() {
            return mem.readU8(statusGpa);
        }

        /** The device-written data bytes (status byte excluded), gathered in chain order. */
        public byte[] in() {
            byte[] b = new byte[inBytes];
            int o = 0;
            for (Buf s : inData) {
                mem.read(s.gpa(), b, o, s.len());
                o += s.len();
            }
            return b;
        }

        public boolean done() {
            return used != null;
        }

        @Override
        public String toString() {
            return "req(vq" + q + " type " + type + " sector " + sector + " head " + head + ")";
        }
    }

    public static long slotAddr(int q, int slot) {
        return ARENA_BASE + ARENA_STRIDE * q + SLOT * slot;
    }

    /**
     * Lays out a request in slot {@code slot} of queue {@code q}: the 16-byte
     * header ({@code type}, reserved 0, {@code sector}), {@code payload} as the
     * rest of the device-readable part, {@code inBytes} device-writable data
     * bytes, then the status byte. Writable buffers are pre-filled with 0xa5,
     * the status byte with 0xff. {@code r} picks the split points.
     */
    public Req build(int q, int slot, int type, long sector, byte[] payload, int inBytes, Layout layout, Random r) {
        long base = slotAddr(q, slot);
        long table = base + SLOT - (long) VirtioRing.DESC_SIZE * 16; // an indirect table of up to 16 entries
        Req req = new Req(q, type, sector, inBytes, layout.indirect(), table);
        long cur = base;
        byte[] hdr = BlkHeaders.outhdr(type, sector);
        if (layout.splitHeader()) {
            int cut = 1 + r.nextInt(VirtioBlkAbi.OUTHDR_SIZE - 1);
            mem.write(cur, hdr, 0, cut);
            req.segs.add(new Buf(cur, cut, false));
            cur += 64;
            mem.write(cur, hdr, cut, hdr.length - cut);
            req.segs.add(new Buf(cur, hdr.length - cut, false));
            cur += 64;
        } else {
            mem.write(cur, hdr);
            req.segs.add(new Buf(cur, hdr.length, false));
            cur += 64;
        }
        int[] outCuts = pieces(payload.length, layout.outPieces(), r);
        int o = 0;
        for (int n : outCuts) {
            mem.write(cur, payload, o, n);
            req.segs.add(new Buf(cur, n, false));
            o += n;
            cur = align8(cur + n + 8 + r.nextInt(64));
        }
        boolean statusAlone = layout.statusAlone() || inBytes == 0;
        int[] inCuts = pieces(inBytes, layout.inPieces(), r);
        for (int i = 0; i < inCuts.length; i++) {
            int n = inCuts[i];
            boolean withStatus = !statusAlone && i == inCuts.length - 1;
            mem.fill(cur, n, IN_FILL);
            req.inData.add(new Buf(cur, n, true));
            if (withStatus) {
                req.statusGpa = cur + n;
                mem.writeU8(req.statusGpa, STATUS_UNSET);
                req.segs.add(new Buf(cur, n + 1, true));
            } else {
                req.segs.add(new Buf(cur, n, true));
            }
            cur = align8(cur + n + 1 + 8 + r.nextInt(64));
        }
        if (statusAlone) {
            req.statusGpa = cur;
            mem.writeU8(cur, STATUS_UNSET);
            req.segs.add(new Buf(cur, 1, true));
            cur += 8;
        }
        if (cur > table) {
            throw new IllegalArgumentException("request does not fit its slot");
        }
        return req;
    }

    private static long align8(long a) {
        return (a + 7) & ~7L;
    }

    /** Splits {@code total} bytes into at most {@code n} non-empty pieces at random points. */
    public static int[] pieces(int total, int n, Random r) {
        if (total == 0) {
            return new int[0];
        }
        n = Math.min(n, total);
        int[] cuts = new int[n];
        int left = total;
        for (int i = 0; i < n - 1; i++) {
            int maxHere = left - (n - 1 - i);
            cuts[i] = 1 + r.nextInt(Math.max(1, Math.min(maxHere, 2 * total / n)));
            left -= cuts[i];
        }
        cuts[n - 1] = left;
        return cuts;
    }

    public Req read(int q, int slot, long sector, int bytes, Layout layout, Random r) {
        return build(q, slot, VirtioBlkAbi.T_IN, sector, new byte[0], bytes, layout, r);
    }

    public Req write(int q, int slot, long sector, byte[] data, Layout layout, Random r) {
        return build(q, slot, VirtioBlkAbi.T_OUT, sector, data, 0, layout, r);
    }

    public Req flush(int q, int slot) {
        return build(q, slot, VirtioBlkAbi.T_FLUSH, 0, new byte[0], 0, Layout.SIMPLE, new Random(0));
    }

    public Req getId(int q, int slot, int bytes) {
        return build(q, slot, VirtioBlkAbi.T_GET_ID, 0, new byte[0], bytes, Layout.SIMPLE, new Random(0));
    }

    /** A DISCARD or WRITE_ZEROES request with one segment {sector, numSectors, flags}. */
    public Req discardOrZeroes(int q, int slot, int type, long sector, long numSectors, int flags) {
        return build(q, slot, type, 0, segment(sector, numSectors, flags), 0, Layout.SIMPLE, new Random(0));
    }

    public static byte[] segment(long sector, long numSectors, int flags) {
        return BlkHeaders.dwzSegment(sector, numSectors, flags);
    }

    /** Makes the requests available on their queue (one publish per queue) and kicks if the device wants it. */
    public void submit(Req... reqs) {
        Map<Integer, List<Req>> byQueue = new HashMap<>();
        for (Req r : reqs) {
            byQueue.computeIfAbsent(r.q, k -> new ArrayList<>()).add(r);
        }
        for (Map.Entry<Integer, List<Req>> e : byQueue.entrySet()) {
            int q = e.getKey();
            GuestRing vq = vqs[q];
            for (Req r : e.getValue()) {
                Buf[] segs = r.segs.toArray(new Buf[0]);
                r.head = r.indirect ? vq.addIndirect(r.indirectTable, segs) : vq.add(segs);
                if (outstanding.get(q).put(r.head, r) != null) {
                    throw new AssertionError("head " + r.head + " reused while outstanding");
                }
            }
            int[] oldNew = vq.publish();
            if (polling || vq.kickNeeded(oldNew)) {
                pci.kick(notify[q], q);
            }
        }
    }

    /** Kicks queue {@code q} unconditionally (a notify write). */
    public void kick(int q) {
        pci.kick(notify[q], q);
    }

    /** Waits until every request has its used entry: by interrupts (Linux) or by polling used.idx (SeaBIOS). */
    public void await(Req... reqs) {
        for (Req r : reqs) {
            while (!r.done()) {
                if (!reap(r.q)) {
                    waitForUsed(r.q, r);
                }
            }
        }
    }

    /** Submits and waits. */
    public void run(Req... reqs) {
        submit(reqs);
        await(reqs);
    }

    /** Takes every used entry of queue {@code q}; returns whether there was one. */
    public boolean reap(int q) {
        GuestRing vq = vqs[q];
        boolean any = false;
        Used u;
        while ((u = vq.pollUsed()) != null) {
            Req r = outstanding.get(q).remove(u.id());
            if (r == null) {
                throw new AssertionError("vq" + q + ": the device used head " + u.id() + ", which is not outstanding");
            }
            r.used = u;
            any = true;
        }
        if (polling && any) {
            pci.readIsr(); // SeaBIOS clears a pending interrupt after each request
        }
        return any;
    }

    /** Blocks until queue {@code q} has a used entry to reap (interrupt or polling); {@code why} names the wait. */
    public void waitForUsed(int q, Object why) {
        GuestRing vq = vqs[q];
        if (polling) {
            long end = System.nanoTime() + deadline.toNanos();
            while (!vq.moreUsed()) {
                if (System.nanoTime() - end > 0) {
                    throw watchdog.hang("used.idx of vq" + q + " to move for " + why);
                }
                Thread.onSpinWait();
                Thread.yield();
            }
            return;
        }
        vq.enableInterrupts();
        if (vq.moreUsed()) {
            return;
        }
        irq.await(q, deadline, "interrupt of vq" + q + " for " + why);
    }
}
