package io.vblk.virtio.blk;

import static io.vblk.virtio.VirtioPciRegs.*;

import io.vblk.virtio.VirtioPciTransport;
import io.vblk.virtio.VirtioStatus;

/**
 * The PCI side of a guest's virtio driver for the virtio-blk tests: it
 * touches the function only through configuration-space accesses and memory
 * accesses at the addresses it assigned to the BARs, decoded by a one-device
 * "bus" here, as Linux's virtio_pci_modern.c and SeaBIOS's virtio-pci.c do.
 * No device object is called; the transport's four entry points are the
 * hardware.
 */
final class GuestPci {
    static final long MSIX_BAR_ADDR = 0xfebf_0000L;
    static final long VIRTIO_BAR_ADDR = 0x8_0000_0000L;

    private final VirtioPciTransport t;
    private long commonBase;
    private long isrBase;
    private long deviceBase;
    private long notifyBase;
    private int notifyMultiplier;
    private int msixCap;
    private long msixTable;
    int msixVectors;

    GuestPci(VirtioPciTransport t) {
        this.t = t;
    }

    // ------------------------------------------------------------------ configuration space

    int cfg8(int off) {
        return t.configRead(off, 1);
    }

    int cfg16(int off) {
        return t.configRead(off, 2);
    }

    int cfg32(int off) {
        return t.configRead(off, 4);
    }

    void cfgWrite16(int off, int v) {
        t.configWrite(off, 2, v);
    }

    void cfgWrite32(int off, int v) {
        t.configWrite(off, 4, v);
    }

    /**
     * What firmware does at boot: size and assign BAR1 and BAR4, enable memory
     * decoding and bus mastering, then walk the capability list for the virtio
     * structures and MSI-X.
     */
    void probe() {
        if (cfg16(VENDOR_ID) != 0x1af4 || cfg16(DEVICE_ID) != 0x1042) {
            throw new AssertionError("not a modern virtio-blk function");
        }
        cfgWrite32(BAR0 + 4 * VirtioPciTransport.MSIX_BAR, (int) MSIX_BAR_ADDR);
        cfgWrite32(BAR0 + 4 * VirtioPciTransport.VIRTIO_BAR, (int) VIRTIO_BAR_ADDR);
        cfgWrite32(BAR0 + 4 * VirtioPciTransport.VIRTIO_BAR + 4, (int) (VIRTIO_BAR_ADDR >>> 32));
        cfgWrite16(COMMAND, COMMAND_MEMORY | COMMAND_MASTER);
        int pos = cfg8(CAPABILITY_LIST);
        for (int guard = 0; pos != 0; guard++) {
            if (guard > 48) {
                throw new AssertionError("capability list loops");
            }
            int id = cfg8(pos);
            if (id == CAP_ID_VNDR) {
                long addr = barAddress(cfg8(pos + CAP_BAR)) + (cfg32(pos + CAP_OFFSET) & 0xffff_ffffL);
                switch (cfg8(pos + CAP_CFG_TYPE)) {
                    case CAP_COMMON_CFG -> commonBase = addr;
                    case CAP_ISR_CFG -> isrBase = addr;
                    case CAP_DEVICE_CFG -> deviceBase = addr;
                    case CAP_NOTIFY_CFG -> {
                        notifyBase = addr;
                        notifyMultiplier = cfg32(pos + NOTIFY_CAP_MULT);
                    }
                    default -> {
                    }
                }
            } else if (id == CAP_ID_MSIX) {
                msixCap = pos;
                msixVectors = (cfg16(pos + MSIX_FLAGS) & MSIX_FLAGS_QSIZE) + 1;
                int table = cfg32(pos + MSIX_TABLE);
                msixTable = barAddress(table & MSIX_BIR_MASK) + (table & ~MSIX_BIR_MASK & 0xffff_ffffL);
            }
            pos = cfg8(pos + 1);
        }
        if (commonBase == 0 || isrBase == 0 || deviceBase == 0 || notifyBase == 0 || msixCap == 0) {
            throw new AssertionError("a virtio structure or MSI-X is missing from the capability list");
        }
    }

    long barAddress(int bar) {
        int lo = cfg32(BAR0 + 4 * bar);
        long a = lo & 0xffff_fff0L;
        if ((lo & BAR_MEM_TYPE_64) != 0) {
            a |= (cfg32(BAR0 + 4 * bar + 4) & 0xffff_ffffL) << 32;
        }
        return a;
    }

    // ------------------------------------------------------------------ memory accesses through the "bus"

    long mmioRead(long addr, int size) {
        int bar = decode(addr);
        return t.mmioRead(bar, addr - barAddress(bar), size);
    }

    void mmioWrite(long addr, int size, long value) {
        int bar = decode(addr);
        t.mmioWrite(bar, addr - barAddress(bar), size, value);
    }

    private int decode(long addr) {
        for (int bar = 0; bar < 6; bar++) {
            long size = t.barSize(bar);
            long base = barAddress(bar);
            if (size != 0 && base != 0 && addr >= base && addr < base + size) {
                return bar;
            }
        }
        throw new AssertionError(String.format("no BAR decodes 0x%x", addr));
    }

    long common(int off, int size) {
        return mmioRead(commonBase + off, size);
    }

    void common(int off, int size, long value) {
        mmioWrite(commonBase + off, size, value);
    }

    int status() {
        return (int) common(COMMON_STATUS, 1);
    }

    void setStatus(int s) {
        common(COMMON_STATUS, 1, s);
    }

    void addStatus(int bits) {
        setStatus(status() | bits);
    }

    boolean needsReset() {
        return (status() & VirtioStatus.DEVICE_NEEDS_RESET) != 0;
    }

    long deviceFeatures() {
        common(COMMON_DFSELECT, 4, 0);
        long lo = common(COMMON_DF, 4);
        common(COMMON_DFSELECT, 4, 1);
        long hi = common(COMMON_DF, 4);
        return hi << 32 | lo;
    }

    void writeDriverFeatures(long f) {
        common(COMMON_GFSELECT, 4, 0);
        common(COMMON_GF, 4, f & 0xffff_ffffL);
        common(COMMON_GFSELECT, 4, 1);
        common(COMMON_GF, 4, f >>> 32);
    }

    void selectQueue(int q) {
        common(COMMON_Q_SELECT, 2, q);
    }

    /** The queue's notify address: notify base + queue_notify_off * multiplier. */
    long notifyAddr(int q) {
        selectQueue(q);
        int noff = (int) common(COMMON_Q_NOFF, 2);
        return notifyBase + (long) noff * notifyMultiplier;
    }

    /** A kick: a 16-bit write of the queue index at its notify address (what Linux's vp_notify does). */
    void kick(long notifyAddr, int q) {
        mmioWrite(notifyAddr, 2, q);
    }

    int readIsr() {
        return (int) mmioRead(isrBase, 1);
    }

    long deviceConfig(int off, int size) {
        return mmioRead(deviceBase + off, size);
    }

    void writeDeviceConfig(int off, int size, long value) {
        mmioWrite(deviceBase + off, size, value);
    }

    // ------------------------------------------------------------------ MSI-X

    /** Programs every vector (address 0xfee00000, data 0x40 + vector), unmasked, and enables MSI-X. */
    void enableMsix() {
        for (int v = 0; v < msixVectors; v++) {
            long e = msixTable + (long) v * MSIX_ENTRY_SIZE;
            mmioWrite(e + MSIX_ENTRY_LOWER_ADDR, 4, 0xfee0_0000L);
            mmioWrite(e + MSIX_ENTRY_UPPER_ADDR, 4, 0);
            mmioWrite(e + MSIX_ENTRY_DATA, 4, 0x40 + v);
            mmioWrite(e + MSIX_ENTRY_VECTOR_CTRL, 4, 0);
        }
        int flags = cfg16(msixCap + MSIX_FLAGS);
        cfgWrite16(msixCap + MSIX_FLAGS, (flags & ~MSIX_FLAGS_MASKALL) | MSIX_FLAGS_ENABLE);
    }

    void disableMsix() {
        int flags = cfg16(msixCap + MSIX_FLAGS);
        cfgWrite16(msixCap + MSIX_FLAGS, flags & ~(MSIX_FLAGS_MASKALL | MSIX_FLAGS_ENABLE));
    }
}
