package io.vblk.virtio.blk;

import static io.vblk.virtio.VirtioPciRegs.*;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.PciTestDriver;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioStatus;
import io.vblk.virtio.blk.GuestVq.Seg;
import io.vblk.virtio.blk.GuestVq.Used;

/**
 * A guest's virtio-blk driver for the device tests, in two flavours:
 * SeaBIOS's (VERSION_1 only, queue 0 of at most 256 entries, no MSI-X,
 * completion found by polling used.idx, ISR read afterwards) and Linux's
 * (MSI-X with a vector per queue plus config, every queue the device offers
 * with MQ, EVENT_IDX and INDIRECT_DESC when offered, completion by
 * interrupt). It reaches the device only through {@link PciTestDriver}, guest RAM
 * and the {@link TestIrqchip}. Requests are laid out in per-queue slots of
 * guest RAM with a chosen segmentation (header split in two, data in
 * pieces, status byte alone or at the end of the last data buffer, indirect
 * tables), so the device's parsing is exercised the way different drivers
 * lay requests out.
 *
 * <p>Each queue is driven by one thread at a time; different queues may be
 * driven by different threads (vCPUs).
 */
final class BlkGuest {
    static final long RING_BASE = 0x10_0000L;
    static final long RING_STRIDE = 0x1_0000L;
    static final long ARENA_BASE = 0x40_0000L;
    static final long SLOT = 256 * 1024;
    static final int SLOTS_PER_QUEUE = 16;
    static final long ARENA_STRIDE = SLOT * SLOTS_PER_QUEUE;
    static final int STATUS_UNSET = 0xff;
    static final byte IN_FILL = (byte) 0xa5;

    /** Feature bits a Linux driver accepts when offered (virtio_blk.c's feature table plus ring features). */
    static final long LINUX_FEATURES = VirtioFeatures.VERSION_1 | VirtioFeatures.EVENT_IDX
            | VirtioFeatures.INDIRECT_DESC | VirtioBlkAbi.F_SIZE_MAX | VirtioBlkAbi.F_SEG_MAX | VirtioBlkAbi.F_BLK_SIZE
            | VirtioBlkAbi.F_FLUSH | VirtioBlkAbi.F_TOPOLOGY | VirtioBlkAbi.F_CONFIG_WCE | VirtioBlkAbi.F_MQ
            | VirtioBlkAbi.F_DISCARD | VirtioBlkAbi.F_WRITE_ZEROES | VirtioBlkAbi.F_RO;

    final BlkMachine m;
    final PciTestDriver pci;
    final GuestMemory mem;
    final Duration deadline = BlkMachine.DEADLINE;
    long features;
    long capacity;
    boolean polling;
    boolean msix;
    GuestVq[] vqs = new GuestVq[0];
    private long[] notify = new long[0];
    private List<Map<Integer, Req>> outstanding = new ArrayList<>();

    BlkGuest(BlkMachine m) {
        this.m = m;
        this.pci = new PciTestDriver(m.transport);
        this.mem = m.mem;
        pci.probe();
    }

    // ------------------------------------------------------------------ initialisation

    /** Writes 0 and polls until the status reads 0, as the specification obliges (SeaBIOS and Linux both do). */
    void reset() {
        pci.setStatus(0);
        long end = System.nanoTime() + deadline.toNanos();
        while (pci.status() != 0) {
            if (System.nanoTime() - end > 0) {
                throw m.watchdog().hang("device status reads back 0 after reset");
            }
            Thread.onSpinWait();
        }
        for (GuestVq vq : vqs) {
            vq.forgetAll();
        }
        for (Map<Integer, Req> o : outstanding) {
            o.clear();
        }
    }

    /** SeaBIOS's virtio-blk init (src/hw/virtio-blk.c): VERSION_1 only, queue 0 capped at 256, no MSI-X. */
    void initSeaBios() {
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
        capacity = pci.deviceConfig(0, 8);
        pci.selectQueue(0);
        int size = (int) pci.common(COMMON_Q_SIZE, 2);
        if (size == 0) {
            throw new AssertionError("queue 0 is not available");
        }
        if (size > 256) {
            size = 256;
            pci.common(COMMON_Q_SIZE, 2, size);
        }
        GuestVq vq = new GuestVq(mem, 0, size, RING_BASE, false);
        vq.disableInterrupts();
        programQueue(0, vq, NO_VECTOR);
        vqs = new GuestVq[] {vq};
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
    void initLinux(long wanted) {
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
        capacity = pci.deviceConfig(0, 8);
        int nq = (features & VirtioBlkAbi.F_MQ) != 0 ? (int) pci.deviceConfig(34, 2) : 1;
        if (nq != (int) pci.common(COMMON_NUMQ, 2) && (features & VirtioBlkAbi.F_MQ) != 0) {
            throw new AssertionError("num_queues " + nq + " differs from the common config's " + pci.common(COMMON_NUMQ, 2));
        }
        pci.enableMsix();
        pci.common(COMMON_MSIX, 2, nq);
        if (pci.common(COMMON_MSIX, 2) != nq) {
            throw new AssertionError("config vector not taken");
        }
        boolean eventIdx = (features & VirtioFeatures.EVENT_IDX) != 0;
        vqs = new GuestVq[nq];
        notify = new long[nq];
        outstanding = new ArrayList<>();
        for (int q = 0; q < nq; q++) {
            pci.selectQueue(q);
            int size = (int) pci.common(COMMON_Q_SIZE, 2);
            vqs[q] = new GuestVq(mem, q, size, RING_BASE + RING_STRIDE * q, eventIdx);
            vqs[q].enableInterrupts();
            programQueue(q, vqs[q], q);
            notify[q] = pci.notifyAddr(q);
            outstanding.add(new HashMap<>());
        }
        polling = false;
        msix = true;
        pci.addStatus(VirtioStatus.DRIVER_OK);
    }

    private void programQueue(int q, GuestVq vq, int vector) {
        pci.selectQueue(q);
        pci.common(COMMON_Q_SIZE, 2, vq.size);
        pci.common(COMMON_Q_DESCLO, 4, vq.desc & 0xffff_ffffL);
        pci.common(COMMON_Q_DESCHI, 4, vq.desc >>> 32);
        pci.common(COMMON_Q_AVAILLO, 4, vq.avail & 0xffff_ffffL);
        pci.common(COMMON_Q_AVAILHI, 4, vq.avail >>> 32);
        pci.common(COMMON_Q_USEDLO, 4, vq.used & 0xffff_ffffL);
        pci.common(COMMON_Q_USEDHI, 4, vq.used >>> 32);
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

    boolean has(long feature) {
        return (features & feature) == feature;
    }

    // ------------------------------------------------------------------ requests

    /** How a request is laid out in guest RAM. */
    record Layout(boolean splitHeader, int outPieces, int inPieces, boolean statusAlone, boolean indirect) {
        static final Layout SIMPLE = new Layout(false, 1, 1, true, false);
        static final Layout SCATTERED = new Layout(true, 3, 3, false, false);
        static final Layout INDIRECT = new Layout(false, 2, 2, true, true);

        static Layout random(Random r, boolean indirectOk) {
            return new Layout(r.nextInt(4) == 0, 1 + r.nextInt(4), 1 + r.nextInt(4), r.nextBoolean(),
                    indirectOk && r.nextInt(3) == 0);
        }
    }

    /** One request as laid out in guest RAM. */
    final class Req {
        final int q;
        final int type;
        final long sector;
        final List<Seg> segs = new ArrayList<>();
        final List<Seg> inData = new ArrayList<>();
        final int inBytes;
        final boolean indirect;
        final long indirectTable;
        long statusGpa;
        int head = -1;
        Used used;

        Req(int q, int type, long sector, int inBytes, boolean indirect, long indirectTable) {
            this.q = q;
            this.type = type;
            this.sector = sector;
            this.inBytes = inBytes;
            this.indirect = indirect;
            this.indirectTable = indirectTable;
        }

        int status() {
            return mem.readU8(statusGpa);
        }

        /** The device-written data bytes (status byte excluded), gathered in chain order. */
        byte[] in() {
            byte[] b = new byte[inBytes];
            int o = 0;
            for (Seg s : inData) {
                mem.read(s.gpa(), b, o, s.len());
                o += s.len();
            }
            return b;
        }

        boolean done() {
            return used != null;
        }

        @Override
        public String toString() {
            return "req(vq" + q + " type " + type + " sector " + sector + " head " + head + ")";
        }
    }

    static long slotAddr(int q, int slot) {
        return ARENA_BASE + ARENA_STRIDE * q + SLOT * slot;
    }

    /**
     * Lays out a request in slot {@code slot} of queue {@code q}: the 16-byte
     * header ({@code type}, reserved 0, {@code sector}), {@code payload} as the
     * rest of the device-readable part, {@code inBytes} device-writable data
     * bytes, then the status byte. Writable buffers are pre-filled with 0xa5,
     * the status byte with 0xff. {@code r} picks the split points.
     */
    Req build(int q, int slot, int type, long sector, byte[] payload, int inBytes, Layout layout, Random r) {
        long base = slotAddr(q, slot);
        long table = base + SLOT - 16L * 16;
        Req req = new Req(q, type, sector, inBytes, layout.indirect(), table);
        long cur = base;
        byte[] hdr = new byte[16];
        putLE(hdr, 0, type, 4);
        putLE(hdr, 8, sector, 8);
        if (layout.splitHeader()) {
            int cut = 1 + r.nextInt(15);
            mem.write(cur, hdr, 0, cut);
            req.segs.add(new Seg(cur, cut, false));
            cur += 64;
            mem.write(cur, hdr, cut, 16 - cut);
            req.segs.add(new Seg(cur, 16 - cut, false));
            cur += 64;
        } else {
            mem.write(cur, hdr);
            req.segs.add(new Seg(cur, 16, false));
            cur += 64;
        }
        int[] outCuts = pieces(payload.length, layout.outPieces(), r);
        int o = 0;
        for (int n : outCuts) {
            mem.write(cur, payload, o, n);
            req.segs.add(new Seg(cur, n, false));
            o += n;
            cur = align8(cur + n + 8 + r.nextInt(64));
        }
        boolean statusAlone = layout.statusAlone() || inBytes == 0;
        int[] inCuts = pieces(inBytes, layout.inPieces(), r);
        for (int i = 0; i < inCuts.length; i++) {
            int n = inCuts[i];
            boolean withStatus = !statusAlone && i == inCuts.length - 1;
            mem.fill(cur, n, IN_FILL);
            req.inData.add(new Seg(cur, n, true));
            if (withStatus) {
                req.statusGpa = cur + n;
                mem.writeU8(req.statusGpa, STATUS_UNSET);
                req.segs.add(new Seg(cur, n + 1, true));
            } else {
                req.segs.add(new Seg(cur, n, true));
            }
            cur = align8(cur + n + 1 + 8 + r.nextInt(64));
        }
        if (statusAlone) {
            req.statusGpa = cur;
            mem.writeU8(cur, STATUS_UNSET);
            req.segs.add(new Seg(cur, 1, true));
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
    static int[] pieces(int total, int n, Random r) {
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

    static void putLE(byte[] b, int off, long v, int n) {
        for (int i = 0; i < n; i++) {
            b[off + i] = (byte) (v >>> (8 * i));
        }
    }

    Req read(int q, int slot, long sector, int bytes, Layout layout, Random r) {
        return build(q, slot, VirtioBlkAbi.T_IN, sector, new byte[0], bytes, layout, r);
    }

    Req write(int q, int slot, long sector, byte[] data, Layout layout, Random r) {
        return build(q, slot, VirtioBlkAbi.T_OUT, sector, data, 0, layout, r);
    }

    Req flush(int q, int slot) {
        return build(q, slot, VirtioBlkAbi.T_FLUSH, 0, new byte[0], 0, Layout.SIMPLE, new Random(0));
    }

    Req getId(int q, int slot, int bytes) {
        return build(q, slot, VirtioBlkAbi.T_GET_ID, 0, new byte[0], bytes, Layout.SIMPLE, new Random(0));
    }

    /** A DISCARD or WRITE_ZEROES request with one segment {sector, numSectors, flags}. */
    Req discardOrZeroes(int q, int slot, int type, long sector, long numSectors, int flags) {
        return build(q, slot, type, 0, segment(sector, numSectors, flags), 0, Layout.SIMPLE, new Random(0));
    }

    static byte[] segment(long sector, long numSectors, int flags) {
        byte[] s = new byte[16];
        putLE(s, 0, sector, 8);
        putLE(s, 8, numSectors, 4);
        putLE(s, 12, flags, 4);
        return s;
    }

    /** Makes the requests available on their queue (one publish per queue) and kicks if the device wants it. */
    void submit(Req... reqs) {
        Map<Integer, List<Req>> byQueue = new HashMap<>();
        for (Req r : reqs) {
            byQueue.computeIfAbsent(r.q, k -> new ArrayList<>()).add(r);
        }
        for (Map.Entry<Integer, List<Req>> e : byQueue.entrySet()) {
            int q = e.getKey();
            GuestVq vq = vqs[q];
            for (Req r : e.getValue()) {
                Seg[] segs = r.segs.toArray(new Seg[0]);
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
    void kick(int q) {
        pci.kick(notify[q], q);
    }

    /** Waits until every request has its used entry: by interrupts (Linux) or by polling used.idx (SeaBIOS). */
    void await(Req... reqs) {
        for (Req r : reqs) {
            while (!r.done()) {
                if (!reap(r.q)) {
                    waitForUsed(r.q, r);
                }
            }
        }
    }

    /** Submits and waits. */
    void run(Req... reqs) {
        submit(reqs);
        await(reqs);
    }

    /** Takes every used entry of queue {@code q}; returns whether there was one. */
    boolean reap(int q) {
        GuestVq vq = vqs[q];
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
    void waitForUsed(int q, Object why) {
        GuestVq vq = vqs[q];
        if (polling) {
            long end = System.nanoTime() + deadline.toNanos();
            while (!vq.moreUsed()) {
                if (System.nanoTime() - end > 0) {
                    throw m.watchdog().hang("used.idx of vq" + q + " to move for " + why);
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
        m.irq.await(q, deadline, "interrupt of vq" + q + " for " + why);
    }
}
