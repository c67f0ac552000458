package io.vblk.guest;

import io.vblk.firmware.PciConfig;
import io.vblk.firmware.Platform;
import io.vblk.firmware.VirtioPci;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioPciRegs;
import io.vblk.virtio.VirtioStatus;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * A Linux-like virtio-blk driver (drivers/block/virtio_blk.c over
 * virtio_pci_modern): negotiates VERSION_1, EVENT_IDX, MQ, BLK_SIZE,
 * SEG_MAX, SIZE_MAX, FLUSH, RO, DISCARD and WRITE_ZEROES; programs one
 * MSI-X vector per queue (plus config) aimed at the vCPU that owns the
 * queue; sets up every queue the device offers, up to the number asked for.
 * It touches the device only through PCI config, MMIO and guest RAM.
 */
public final class VirtioBlkGuest {
    /** The MSI address window; bits 12..19 carry the destination APIC id (the vCPU). */
    public static final long MSI_ADDRESS_BASE = 0xfee0_0000L;
    /** Message data of the config vector; queue q uses {@code VECTOR_BASE + 1 + q}. */
    public static final int VECTOR_BASE = 0x40;

    /** What the driver asks for. */
    public record Options(int maxQueues, int queueSize, boolean eventIdx, int vcpus) {
        public Options {
            if (maxQueues < 1 || vcpus < 1) {
                throw new IllegalArgumentException("need at least one queue and one vCPU");
            }
        }
    }

    private final Platform p;
    private final VirtioPci vp;
    private final long features;
    private final long capacity;
    private final BlkQueue[] queues;
    private int status;

    private VirtioBlkGuest(Platform p, VirtioPci vp, long features, long capacity, BlkQueue[] queues, int status) {
        this.p = p;
        this.vp = vp;
        this.features = features;
        this.capacity = capacity;
        this.queues = queues;
        this.status = status;
    }

    /** Brings the device at {@code bdf} up (its BARs already assigned by the firmware). */
    public static VirtioBlkGuest probe(Platform p, int bdf, GuestAllocator mem, Options o) {
        return probe(p, bdf, mem, o, true);
    }

    /**
     * Brings the device up to its queues; with {@code driverOk} false it stops
     * before DRIVER_OK, as a driver that submits (and kicks) a request before
     * it declares itself ready (QEMU's virtio_blk_handle_output: "Some guests
     * kick before setting VIRTIO_CONFIG_S_DRIVER_OK"); {@link #setDriverOk()}
     * finishes the probe.
     */
    public static VirtioBlkGuest probe(Platform p, int bdf, GuestAllocator mem, Options o, boolean driverOk) {
        PciConfig cfg = new PciConfig(p);
        VirtioPci vp = VirtioPci.probe(p, cfg, bdf);
        if (vp == null) {
            throw new GuestDriverException("virtio-blk " + PciConfig.name(bdf) + ": not a modern virtio-pci device");
        }
        if (!vp.reset(5_000_000_000L)) {
            throw new GuestDriverException("virtio-blk " + vp.name() + ": reset did not complete");
        }
        int status = VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER;
        vp.setStatus(status);
        long offered = vp.deviceFeatures();
        if ((offered & VirtioFeatures.VERSION_1) == 0) {
            throw fail(vp, "no VERSION_1");
        }
        long wanted = VirtioFeatures.VERSION_1 | VirtioBlkAbi.F_SIZE_MAX | VirtioBlkAbi.F_SEG_MAX | VirtioBlkAbi.F_RO | VirtioBlkAbi.F_BLK_SIZE | VirtioBlkAbi.F_FLUSH | VirtioBlkAbi.F_MQ | VirtioBlkAbi.F_DISCARD
                | VirtioBlkAbi.F_WRITE_ZEROES | (o.eventIdx() ? VirtioFeatures.EVENT_IDX : 0);
        long features = offered & wanted;
        vp.setDriverFeatures(features);
        status |= VirtioStatus.FEATURES_OK;
        vp.setStatus(status);
        if ((vp.status() & VirtioStatus.FEATURES_OK) == 0) {
            throw fail(vp, "device refused features 0x" + Long.toHexString(features));
        }
        long capacity = vp.deviceConfig(VirtioBlkAbi.CFG_CAPACITY, 8);
        int nq = (features & VirtioBlkAbi.F_MQ) != 0 ? Math.max(1, (int) vp.deviceConfig(VirtioBlkAbi.CFG_NUM_QUEUES, 2)) : 1;
        nq = Math.min(nq, Math.min(o.maxQueues(), vp.numQueues()));
        int msix = cfg.findCapability(bdf, VirtioPciRegs.CAP_ID_MSIX);
        if (msix == 0) {
            throw fail(vp, "no MSI-X capability");
        }
        programMsix(p, cfg, bdf, msix, nq, o.vcpus());
        if (vp.setConfigVector(0) != 0) {
            throw fail(vp, "config vector refused");
        }
        boolean eventIdx = (features & VirtioFeatures.EVENT_IDX) != 0;
        BlkQueue[] queues = new BlkQueue[nq];
        for (int q = 0; q < nq; q++) {
            vp.selectQueue(q);
            int max = vp.queueSize();
            if (max == 0) {
                throw fail(vp, "queue " + q + " unavailable");
            }
            int size = Math.min(max, o.queueSize());
            vp.setQueueSize(size);
            SplitRing ring = new SplitRing(p, mem, size, eventIdx);
            vp.setQueueAddresses(ring.desc, ring.avail, ring.used);
            if (vp.setQueueVector(q + 1) != q + 1) {
                throw fail(vp, "queue " + q + " vector refused");
            }
            vp.setQueueEnable();
            queues[q] = new BlkQueue(p, q, ring, vp.notifyAddress(), VECTOR_BASE + 1 + q, mem);
        }
        VirtioBlkGuest g = new VirtioBlkGuest(p, vp, features, capacity, queues, status);
        if (driverOk) {
            g.setDriverOk();
        }
        return g;
    }

    /** The probe's last step: DRIVER_OK (the device may use the queues from now on). */
    public void setDriverOk() {
        status |= VirtioStatus.DRIVER_OK;
        vp.setStatus(status);
    }

    /** Table entry i: vector 0 (config) to vCPU 0, queue vector q+1 to vCPU q % vcpus; then enable MSI-X. */
    private static void programMsix(Platform p, PciConfig cfg, int bdf, int cap, int nq, int vcpus) {
        int tableReg = cfg.read32(bdf, cap + 4);
        long table = cfg.barAddress(bdf, tableReg & 7) + (tableReg & ~7);
        for (int i = 0; i <= nq; i++) {
            int vcpu = i == 0 ? 0 : (i - 1) % vcpus;
            long e = table + 16L * i;
            p.mmioWrite(e, 4, MSI_ADDRESS_BASE | ((long) vcpu << 12));
            p.mmioWrite(e + 4, 4, 0);
            p.mmioWrite(e + 8, 4, VECTOR_BASE + i);
            p.mmioWrite(e + 12, 4, 0); // unmasked
        }
        int ctrl = cfg.read16(bdf, cap + 2);
        cfg.write16(bdf, cap + 2, (ctrl | 0x8000) & ~0x4000);
    }

    private static GuestDriverException fail(VirtioPci vp, String why) {
        vp.setStatus(VirtioStatus.FAILED);
        return new GuestDriverException("virtio-blk " + vp.name() + ": " + why);
    }

    public long features() {
        return features;
    }

    public boolean hasFeature(long f) {
        return (features & f) != 0;
    }

    /** Disk size in 512-byte sectors. */
    public long capacity() {
        return capacity;
    }

    public int numQueues() {
        return queues.length;
    }

    public BlkQueue queue(int q) {
        return queues[q];
    }

    /** Resets the device, as the driver's remove path does. */
    public void reset() {
        vp.setStatus(0);
    }

    public String name() {
        return vp.name();
    }
}
