package io.vblk.firmware;

/**
 * The driver side of a modern virtio-pci function (virtio 1.2, 4.1): find
 * the COMMON, NOTIFY, ISR and DEVICE capabilities, then reach each structure
 * with MMIO at BAR base + offset. Used by the firmware (as SeaBIOS's
 * virtio-pci.c) and by the Linux-like guest driver (as virtio_pci_modern).
 */
public final class VirtioPci {
    static final int CAP_VENDOR = 0x09;
    static final int CFG_COMMON = 1;
    static final int CFG_NOTIFY = 2;
    static final int CFG_ISR = 3;
    static final int CFG_DEVICE = 4;

    // common configuration structure offsets (virtio 1.2, 4.1.4.3)
    static final int DEVICE_FEATURE_SELECT = 0x00;
    static final int DEVICE_FEATURE = 0x04;
    static final int DRIVER_FEATURE_SELECT = 0x08;
    static final int DRIVER_FEATURE = 0x0c;
    static final int DEVICE_STATUS = 0x14;
    static final int QUEUE_SELECT = 0x16;
    static final int QUEUE_SIZE = 0x18;
    static final int QUEUE_MSIX_VECTOR = 0x1a;
    static final int QUEUE_ENABLE = 0x1c;
    static final int QUEUE_NOTIFY_OFF = 0x1e;
    static final int QUEUE_DESC = 0x20;
    static final int QUEUE_DRIVER = 0x28;
    static final int QUEUE_DEVICE = 0x30;
    static final int MSIX_CONFIG = 0x10;
    static final int NUM_QUEUES = 0x12;
    /** "No MSI-X vector" in msix_config / queue_msix_vector. */
    public static final int NO_VECTOR = 0xffff;

    public static final int S_ACKNOWLEDGE = 1;
    public static final int S_DRIVER = 2;
    public static final int S_DRIVER_OK = 4;
    public static final int S_FEATURES_OK = 8;
    public static final int S_NEEDS_RESET = 0x40;
    public static final int S_FAILED = 0x80;

    private final Platform p;
    final PciDevice dev;
    long common;
    long notify;
    int notifyMultiplier;
    long isr;
    long device;

    private VirtioPci(Platform p, PciDevice dev) {
        this.p = p;
        this.dev = dev;
    }

    /** Probes a function whose BARs are already assigned (the Linux-like driver after the firmware ran). */
    public static VirtioPci probe(Platform p, PciConfig cfg, int bdf) {
        int id = cfg.read32(bdf, 0);
        PciDevice d = new PciDevice(bdf, id & 0xffff, id >>> 16);
        for (int i = 0; i < 6; i++) {
            d.bar[i] = cfg.barAddress(bdf, i);
        }
        return probe(p, cfg, d);
    }

    /** Walks the capability list; null when a required capability is missing (a legacy-only device). */
    static VirtioPci probe(Platform p, PciConfig cfg, PciDevice dev) {
        VirtioPci v = new VirtioPci(p, dev);
        if ((cfg.read16(dev.bdf, 0x06) & 0x10) == 0) {
            return null; // no capability list
        }
        int pos = cfg.read8(dev.bdf, 0x34) & 0xfc;
        int guard = 0;
        while (pos != 0 && guard++ < 48) {
            int id = cfg.read8(dev.bdf, pos);
            if (id == CAP_VENDOR) {
                int type = cfg.read8(dev.bdf, pos + 3);
                int bar = cfg.read8(dev.bdf, pos + 4);
                long off = cfg.read32(dev.bdf, pos + 8) & 0xffffffffL;
                long addr = bar < 6 ? dev.bar[bar] + off : 0;
                switch (type) {
                    case CFG_COMMON:
                        v.common = addr;
                        break;
                    case CFG_NOTIFY:
                        v.notify = addr;
                        v.notifyMultiplier = cfg.read32(dev.bdf, pos + 16);
                        break;
                    case CFG_ISR:
                        v.isr = addr;
                        break;
                    case CFG_DEVICE:
                        v.device = addr;
                        break;
                    default:
                        break;
                }
            }
            pos = cfg.read8(dev.bdf, pos + 1) & 0xfc;
        }
        if (v.common == 0 || v.notify == 0 || v.isr == 0 || v.device == 0) {
            return null;
        }
        return v;
    }

    public int status() {
        return (int) p.mmioRead(common + DEVICE_STATUS, 1);
    }

    public void setStatus(int s) {
        p.mmioWrite(common + DEVICE_STATUS, 1, s);
    }

    /** Writes 0 to the status and waits for the device to finish resetting (it reads back 0). */
    public boolean reset(long timeoutNs) {
        setStatus(0);
        long deadline = p.nanoTime() + timeoutNs;
        while (status() != 0) {
            if (p.nanoTime() - deadline > 0) {
                return false;
            }
            p.delayMicros(5);
        }
        readIsr();
        return true;
    }

    public long deviceFeatures() {
        p.mmioWrite(common + DEVICE_FEATURE_SELECT, 4, 0);
        long lo = p.mmioRead(common + DEVICE_FEATURE, 4) & 0xffffffffL;
        p.mmioWrite(common + DEVICE_FEATURE_SELECT, 4, 1);
        long hi = p.mmioRead(common + DEVICE_FEATURE, 4) & 0xffffffffL;
        return hi << 32 | lo;
    }

    public void setDriverFeatures(long f) {
        p.mmioWrite(common + DRIVER_FEATURE_SELECT, 4, 0);
        p.mmioWrite(common + DRIVER_FEATURE, 4, f & 0xffffffffL);
        p.mmioWrite(common + DRIVER_FEATURE_SELECT, 4, 1);
        p.mmioWrite(common + DRIVER_FEATURE, 4, f >>> 32);
    }

    public int readIsr() {
        return (int) p.mmioRead(isr, 1);
    }

    public long deviceConfig(int offset, int size) {
        return p.mmioRead(device + offset, size);
    }

    public void selectQueue(int q) {
        p.mmioWrite(common + QUEUE_SELECT, 2, q);
    }

    public int queueSize() {
        return (int) p.mmioRead(common + QUEUE_SIZE, 2);
    }

    public void setQueueSize(int n) {
        p.mmioWrite(common + QUEUE_SIZE, 2, n);
    }

    public void setQueueAddresses(long desc, long avail, long used) {
        p.mmioWrite(common + QUEUE_DESC, 4, desc & 0xffffffffL);
        p.mmioWrite(common + QUEUE_DESC + 4, 4, desc >>> 32);
        p.mmioWrite(common + QUEUE_DRIVER, 4, avail & 0xffffffffL);
        p.mmioWrite(common + QUEUE_DRIVER + 4, 4, avail >>> 32);
        p.mmioWrite(common + QUEUE_DEVICE, 4, used & 0xffffffffL);
        p.mmioWrite(common + QUEUE_DEVICE + 4, 4, used >>> 32);
    }

    void enableQueue() {
        p.mmioWrite(common + QUEUE_MSIX_VECTOR, 2, 0xffff); // no MSI-X: SeaBIOS polls
        p.mmioWrite(common + QUEUE_ENABLE, 2, 1);
    }

    public int bdf() {
        return dev.bdf;
    }

    public String name() {
        return dev.name();
    }

    public int numQueues() {
        return (int) p.mmioRead(common + NUM_QUEUES, 2);
    }

    /** Sets the config-change vector; returns what the device accepted (NO_VECTOR on failure). */
    public int setConfigVector(int vector) {
        p.mmioWrite(common + MSIX_CONFIG, 2, vector);
        return (int) p.mmioRead(common + MSIX_CONFIG, 2);
    }

    /** Sets the selected queue's vector; returns what the device accepted. */
    public int setQueueVector(int vector) {
        p.mmioWrite(common + QUEUE_MSIX_VECTOR, 2, vector);
        return (int) p.mmioRead(common + QUEUE_MSIX_VECTOR, 2);
    }

    /** Enables the selected queue without touching its vector. */
    public void setQueueEnable() {
        p.mmioWrite(common + QUEUE_ENABLE, 2, 1);
    }

    public long notifyAddress() {
        int off = (int) p.mmioRead(common + QUEUE_NOTIFY_OFF, 2);
        return notify + (long) off * notifyMultiplier;
    }
}
