package io.vblk.virtio;

import java.util.concurrent.atomic.AtomicIntegerArray;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The common configuration structure of a modern virtio-pci function
 * ({@code struct virtio_pci_common_cfg}, virtio 1.2 section 4.1.4.3): feature
 * windows, MSI-X vector mapping, device status, and the selected queue's
 * size, vector, enable and ring addresses. QEMU's
 * {@code virtio_pci_common_read}/{@code virtio_pci_common_write}.
 *
 * <p>Selectors and the write path are guarded by this object's monitor,
 * except status writes: a write of 0 waits for the device's reset, which runs
 * in the home context and calls back into the transport. Writes while a reset
 * is in progress are ignored; queue fields of an enabled queue are read-only;
 * queue_enable accepts only 1 (anything else is a device error, as in QEMU).
 */
final class VirtioPciCommonCfg {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioPciCommonCfg.class);

    private final VirtioDevice device;
    private final String name;
    private final int numQueues;
    /** Vector per queue, then the configuration vector at index numQueues; shared with the transport. */
    private final AtomicIntegerArray vectors;
    private final int msixVectors;
    private int deviceFeatureSelect;
    private int driverFeatureSelect;
    private int queueSelect;

    VirtioPciCommonCfg(VirtioDevice device, AtomicIntegerArray vectors, int msixVectors) {
        this.device = device;
        this.name = device.name();
        this.numQueues = device.numQueues();
        this.vectors = vectors;
        this.msixVectors = msixVectors;
        reset();
    }

    /** The device reset: selectors 0, every vector unmapped. */
    synchronized void reset() {
        deviceFeatureSelect = 0;
        driverFeatureSelect = 0;
        queueSelect = 0;
        for (int i = 0; i <= numQueues; i++) {
            vectors.set(i, VirtioPciRegs.NO_VECTOR);
        }
    }

    /** A read of the field at {@code off} (QEMU decodes by offset; the bus masks to the access size). */
    long read(int off) {
        VirtQueue vq;
        synchronized (this) {
            switch (off) {
                case VirtioPciRegs.COMMON_DFSELECT:
                    return deviceFeatureSelect & 0xffff_ffffL;
                case VirtioPciRegs.COMMON_DF:
                    return featureHalf(device.deviceFeatures(), deviceFeatureSelect);
                case VirtioPciRegs.COMMON_GFSELECT:
                    return driverFeatureSelect & 0xffff_ffffL;
                case VirtioPciRegs.COMMON_GF:
                    return featureHalf(device.driverFeatures(), driverFeatureSelect);
                case VirtioPciRegs.COMMON_MSIX:
                    return vectors.get(numQueues);
                case VirtioPciRegs.COMMON_NUMQ:
                    return numQueues;
                case VirtioPciRegs.COMMON_STATUS:
                    return device.status();
                case VirtioPciRegs.COMMON_CFGGENERATION:
                    return device.configGeneration() & 0xff;
                case VirtioPciRegs.COMMON_Q_SELECT:
                    return queueSelect;
                default:
                    break;
            }
            if (queueSelect >= numQueues) {
                return off == VirtioPciRegs.COMMON_Q_MSIX ? VirtioPciRegs.NO_VECTOR : 0;
            }
            vq = device.queue(queueSelect);
            switch (off) {
                case VirtioPciRegs.COMMON_Q_SIZE:
                    return vq.size();
                case VirtioPciRegs.COMMON_Q_MSIX:
                    return vectors.get(queueSelect);
                case VirtioPciRegs.COMMON_Q_ENABLE:
                    return vq.isEnabled() ? 1 : 0;
                case VirtioPciRegs.COMMON_Q_NOFF:
                    return queueSelect; // notify address = notify base + index * multiplier
                case VirtioPciRegs.COMMON_Q_DESCLO:
                    return vq.descAddr();
                case VirtioPciRegs.COMMON_Q_DESCHI:
                    return vq.descAddr() >>> 32;
                case VirtioPciRegs.COMMON_Q_AVAILLO:
                    return vq.availAddr();
                case VirtioPciRegs.COMMON_Q_AVAILHI:
                    return vq.availAddr() >>> 32;
                case VirtioPciRegs.COMMON_Q_USEDLO:
                    return vq.usedAddr();
                case VirtioPciRegs.COMMON_Q_USEDHI:
                    return vq.usedAddr() >>> 32;
                default:
                    return 0;
            }
        }
    }

    private static long featureHalf(long features, int select) {
        return select == 0 ? features & 0xffff_ffffL : select == 1 ? features >>> 32 : 0;
    }

    /** A write of the field at {@code off}. */
    void write(int off, int size, long value) {
        if (off == VirtioPciRegs.COMMON_STATUS) {
            // outside this lock: a write of 0 waits for the reset, which calls reset() here
            device.writeStatus((int) value & 0xff);
            return;
        }
        synchronized (this) {
            if (device.isResetPending()) {
                LOG.debug("{}: common config write at {} ignored: reset in progress", name, off);
                return;
            }
            int v32 = (int) value;
            switch (off) {
                case VirtioPciRegs.COMMON_DFSELECT:
                    deviceFeatureSelect = v32;
                    return;
                case VirtioPciRegs.COMMON_GFSELECT:
                    driverFeatureSelect = v32;
                    return;
                case VirtioPciRegs.COMMON_GF:
                    if (driverFeatureSelect == 0 || driverFeatureSelect == 1) {
                        long f = device.driverFeatures();
                        int shift = 32 * driverFeatureSelect;
                        f = (f & ~(0xffff_ffffL << shift)) | ((value & 0xffff_ffffL) << shift);
                        device.setDriverFeatures(f);
                    }
                    return;
                case VirtioPciRegs.COMMON_MSIX:
                    vectors.set(numQueues, checkedVector(v32));
                    return;
                case VirtioPciRegs.COMMON_Q_SELECT:
                    queueSelect = v32 & 0xffff;
                    return;
                default:
                    break;
            }
            if (queueSelect >= numQueues) {
                LOG.debug("{}: write at {} for missing queue {} ignored", name, off, queueSelect);
                return;
            }
            VirtQueue vq = device.queue(queueSelect);
            if (off == VirtioPciRegs.COMMON_Q_MSIX) {
                vectors.set(queueSelect, checkedVector(v32));
                return;
            }
            if (off == VirtioPciRegs.COMMON_Q_ENABLE) {
                if ((v32 & 0xffff) == 1) {
                    vq.enable();
                } else {
                    device.virtioError("wrong value " + (v32 & 0xffff) + " written to queue_enable of queue "
                            + queueSelect);
                }
                return;
            }
            if (vq.isEnabled()) {
                LOG.debug("{}: write at {} to enabled queue {} ignored", name, off, queueSelect);
                return;
            }
            switch (off) {
                case VirtioPciRegs.COMMON_Q_SIZE:
                    vq.setSize(v32 & 0xffff);
                    return;
                case VirtioPciRegs.COMMON_Q_DESCLO:
                    vq.setDescAddr(low(vq.descAddr(), value, size));
                    return;
                case VirtioPciRegs.COMMON_Q_DESCHI:
                    vq.setDescAddr(high(vq.descAddr(), value));
                    return;
                case VirtioPciRegs.COMMON_Q_AVAILLO:
                    vq.setAvailAddr(low(vq.availAddr(), value, size));
                    return;
                case VirtioPciRegs.COMMON_Q_AVAILHI:
                    vq.setAvailAddr(high(vq.availAddr(), value));
                    return;
                case VirtioPciRegs.COMMON_Q_USEDLO:
                    vq.setUsedAddr(low(vq.usedAddr(), value, size));
                    return;
                case VirtioPciRegs.COMMON_Q_USEDHI:
                    vq.setUsedAddr(high(vq.usedAddr(), value));
                    return;
                default:
                    LOG.debug("{}: write to read-only common config offset {} ignored", name, off);
            }
        }
    }

    /** A 64-bit queue address field written whole (8 bytes) or as its low dword. */
    private static long low(long old, long value, int size) {
        return size == 8 ? value : (old & 0xffff_ffff_0000_0000L) | (value & 0xffff_ffffL);
    }

    private static long high(long old, long value) {
        return (old & 0xffff_ffffL) | (value << 32);
    }

    /** Virtio 4.1.5.1.2: a vector the device cannot map reads back as NO_VECTOR. */
    private int checkedVector(int v) {
        v &= 0xffff;
        return v < msixVectors ? v : VirtioPciRegs.NO_VECTOR;
    }
}
