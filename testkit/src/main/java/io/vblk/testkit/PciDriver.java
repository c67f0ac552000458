package io.vblk.testkit;

import static io.vblk.virtio.VirtioPciRegs.*;

import java.util.ArrayList;
import java.util.List;

import io.vblk.virtio.VirtioPciTransport;
import io.vblk.virtio.VirtioStatus;

/**
 * A guest's virtio-pci driver in miniature: it touches the function only
 * through configuration-space accesses and memory accesses at the addresses
 * it assigned to the BARs (decoded by a one-device "bus" here), as Linux's
 * virtio_pci_modern.c and SeaBIOS's virtio-pci.c do. No device object is
 * called: the transport's four entry points are the hardware. Guest RAM
 * holds the rings ({@link GuestRing}). Offsets and bits are
 * {@link io.vblk.virtio.VirtioPciRegs}'. Used by the transport tests and the
 * virtio-blk driver ({@link BlkDriver}).
 */
public final class PciDriver {
    public static final long MSIX_BAR_ADDR = 0xfebf_0000L;
    public static final long VIRTIO_BAR_ADDR = 0x8_0000_0000L;

    /** A virtio structure found through a vendor capability. */
    public record Region(int capOffset, int bar, long offset, long length) {
    }

    public final VirtioPciTransport t;
    /** Capability IDs in list order, as {@link #walkCaps()} found them. */
    public final List<Integer> capIds = new ArrayList<>();
    public Region common;
    public Region isr;
    public Region device;
    public Region notify;
    public int notifyMultiplier;
    public int pciCfgCap;
    public int msixCap;
    public int msixTableBar;
    public long msixTableOffset;
    public int msixPbaBar;
    public long msixPbaOffset;
    public int msixVectors;

    public PciDriver(VirtioPciTransport t) {
        this.t = t;
    }

    // ------------------------------------------------------------------ config space

    public int cfg8(int off) {
        return t.configRead(off, 1);
    }

    public int cfg16(int off) {
        return t.configRead(off, 2);
    }

    public int cfg32(int off) {
        return t.configRead(off, 4);
    }

    public void cfgWrite16(int off, int v) {
        t.configWrite(off, 2, v);
    }

    public void cfgWrite32(int off, int v) {
        t.configWrite(off, 4, v);
    }

    /** The BAR sizing protocol: write all-ones, read back, restore. Returns size (0 = not implemented). */
    public long sizeBar(int bar) {
        int reg = BAR0 + 4 * bar;
        int old = cfg32(reg);
        cfgWrite32(reg, -1);
        int lo = cfg32(reg);
        cfgWrite32(reg, old);
        if (lo == 0) {
            return 0;
        }
        long mask = lo & 0xffff_fff0L;
        if ((lo & BAR_MEM_TYPE_64) != 0) {
            int oldHi = cfg32(reg + 4);
            cfgWrite32(reg + 4, -1);
            long hi = cfg32(reg + 4) & 0xffff_ffffL;
            cfgWrite32(reg + 4, oldHi);
            mask |= hi << 32;
        } else {
            mask |= 0xffff_ffff_0000_0000L;
        }
        return -mask;
    }

    /** Assigns BAR1 and BAR4 and enables memory decoding and bus mastering: what firmware does at boot. */
    public void assignBars() {
        cfgWrite32(BAR0 + 4 * VirtioPciTransport.MSIX_BAR, (int) MSIX_BAR_ADDR);
        cfgWrite32(BAR0 + 4 * VirtioPciTransport.VIRTIO_BAR, (int) VIRTIO_BAR_ADDR);
        cfgWrite32(BAR0 + 4 * VirtioPciTransport.VIRTIO_BAR + 4, (int) (VIRTIO_BAR_ADDR >>> 32));
        cfgWrite16(COMMAND, COMMAND_MEMORY | COMMAND_MASTER);
    }

    public long barAddress(int bar) {
        int lo = cfg32(BAR0 + 4 * bar);
        long a = lo & 0xffff_fff0L;
        if ((lo & BAR_MEM_TYPE_64) != 0) {
            a |= (cfg32(BAR0 + 4 * bar + 4) & 0xffff_ffffL) << 32;
        }
        return a;
    }

    /** Walks the capability list, recording the virtio structures and MSI-X. */
    public void walkCaps() {
        if ((cfg16(STATUS) & STATUS_CAP_LIST) == 0) {
            throw new AssertionError("no capability list");
        }
        int pos = cfg8(CAPABILITY_LIST);
        int guard = 0;
        while (pos != 0) {
            if (++guard > 48) {
                throw new AssertionError("capability list loops");
            }
            int id = cfg8(pos);
            capIds.add(id);
            if (id == CAP_ID_VNDR) {
                int type = cfg8(pos + CAP_CFG_TYPE);
                Region r = new Region(pos, cfg8(pos + CAP_BAR), cfg32(pos + CAP_OFFSET) & 0xffff_ffffL,
                        cfg32(pos + CAP_LENGTH) & 0xffff_ffffL);
                switch (type) {
                    case CAP_COMMON_CFG -> common = r;
                    case CAP_ISR_CFG -> isr = r;
                    case CAP_DEVICE_CFG -> device = r;
                    case CAP_NOTIFY_CFG -> {
                        notify = r;
                        notifyMultiplier = cfg32(pos + NOTIFY_CAP_MULT);
                    }
                    case CAP_PCI_CFG -> pciCfgCap = pos;
                    default -> {
                    }
                }
            } else if (id == CAP_ID_MSIX) {
                msixCap = pos;
                msixVectors = (cfg16(pos + MSIX_FLAGS) & MSIX_FLAGS_QSIZE) + 1;
                int table = cfg32(pos + MSIX_TABLE);
                int pba = cfg32(pos + MSIX_PBA);
                msixTableBar = table & MSIX_BIR_MASK;
                msixTableOffset = table & ~MSIX_BIR_MASK & 0xffff_ffffL;
                msixPbaBar = pba & MSIX_BIR_MASK;
                msixPbaOffset = pba & ~MSIX_BIR_MASK & 0xffff_ffffL;
            }
            pos = cfg8(pos + 1);
        }
    }

    public void probe() {
        assignBars();
        walkCaps();
    }

    // ------------------------------------------------------------------ memory accesses through the "bus"

    public long mmioRead(long addr, int size) {
        int bar = decode(addr);
        return t.mmioRead(bar, addr - barAddress(bar), size);
    }

    public void mmioWrite(long addr, int size, long value) {
        int bar = decode(addr);
        t.mmioWrite(bar, addr - barAddress(bar), size, value);
    }

    private int decode(long addr) {
        if ((cfg16(COMMAND) & COMMAND_MEMORY) == 0) {
            throw new AssertionError("memory decoding is off");
        }
        for (int bar = 0; bar < 6; bar++) {
            long size = t.barSize(bar);
            long base = barAddress(bar);
            if (size != 0 && base != 0 && addr >= base && addr < base + size) {
                return bar;
            }
        }
        throw new AssertionError(String.format("no BAR decodes 0x%x", addr));
    }

    public long regionAddr(Region r, long off) {
        return barAddress(r.bar()) + r.offset() + off;
    }

    public long common(int off, int size) {
        return mmioRead(regionAddr(common, off), size);
    }

    public void common(int off, int size, long value) {
        mmioWrite(regionAddr(common, off), size, value);
    }

    public int status() {
        return (int) common(COMMON_STATUS, 1);
    }

    public void setStatus(int s) {
        common(COMMON_STATUS, 1, s);
    }

    public void addStatus(int bits) {
        setStatus(status() | bits);
    }

    public boolean needsReset() {
        return (status() & VirtioStatus.DEVICE_NEEDS_RESET) != 0;
    }

    /** Writes 0 and waits, as the specification obliges, until the status reads back 0. */
    public void reset() {
        setStatus(0);
        Spin.until("device status reads back 0 after reset", () -> status() == 0);
    }

    public long deviceFeatures() {
        common(COMMON_DFSELECT, 4, 0);
        long lo = common(COMMON_DF, 4);
        common(COMMON_DFSELECT, 4, 1);
        long hi = common(COMMON_DF, 4);
        return hi << 32 | lo;
    }

    public void writeDriverFeatures(long f) {
        common(COMMON_GFSELECT, 4, 0);
        common(COMMON_GF, 4, f & 0xffff_ffffL);
        common(COMMON_GFSELECT, 4, 1);
        common(COMMON_GF, 4, f >>> 32);
    }

    /** ACKNOWLEDGE, DRIVER, features, FEATURES_OK; returns whether FEATURES_OK stuck. */
    public boolean negotiate(long accept) {
        setStatus(VirtioStatus.ACKNOWLEDGE);
        addStatus(VirtioStatus.DRIVER);
        writeDriverFeatures(accept);
        addStatus(VirtioStatus.FEATURES_OK);
        return (status() & VirtioStatus.FEATURES_OK) != 0;
    }

    public void selectQueue(int q) {
        common(COMMON_Q_SELECT, 2, q);
    }

    /** Programs queue {@code q} with {@code ring}'s addresses and MSI-X {@code vector}, then enables it. */
    public void setupQueue(int q, GuestRing ring, int vector) {
        queueAddresses(q, ring);
        common(COMMON_Q_MSIX, 2, vector);
        common(COMMON_Q_ENABLE, 2, 1);
    }

    /** Selects queue {@code q} and writes its size and ring addresses from {@code ring}. */
    public void queueAddresses(int q, GuestRing ring) {
        selectQueue(q);
        common(COMMON_Q_SIZE, 2, ring.size);
        common(COMMON_Q_DESCLO, 4, ring.desc & 0xffff_ffffL);
        common(COMMON_Q_DESCHI, 4, ring.desc >>> 32);
        common(COMMON_Q_AVAILLO, 4, ring.avail & 0xffff_ffffL);
        common(COMMON_Q_AVAILHI, 4, ring.avail >>> 32);
        common(COMMON_Q_USEDLO, 4, ring.used & 0xffff_ffffL);
        common(COMMON_Q_USEDHI, 4, ring.used >>> 32);
    }

    public void driverOk() {
        addStatus(VirtioStatus.DRIVER_OK);
    }

    /** The queue's notify address: notify base + queue_notify_off * multiplier. */
    public long notifyAddr(int q) {
        selectQueue(q);
        int noff = (int) common(COMMON_Q_NOFF, 2);
        return regionAddr(notify, (long) noff * notifyMultiplier);
    }

    public void kick(int q) {
        kick(notifyAddr(q), q);
    }

    /** A kick at a notify address looked up once: a 16-bit write of the queue index (Linux's vp_notify). */
    public void kick(long notifyAddr, int q) {
        mmioWrite(notifyAddr, 2, q);
    }

    public int readIsr() {
        return (int) mmioRead(regionAddr(isr, 0), 1);
    }

    public long deviceConfig(int off, int size) {
        return mmioRead(regionAddr(device, off), size);
    }

    public void writeDeviceConfig(int off, int size, long value) {
        mmioWrite(regionAddr(device, off), size, value);
    }

    // ------------------------------------------------------------------ MSI-X

    public void setMsixControl(boolean enable, boolean maskAll) {
        int flags = cfg16(msixCap + MSIX_FLAGS);
        flags = (flags & ~(MSIX_FLAGS_ENABLE | MSIX_FLAGS_MASKALL)) | (enable ? MSIX_FLAGS_ENABLE : 0)
                | (maskAll ? MSIX_FLAGS_MASKALL : 0);
        cfgWrite16(msixCap + MSIX_FLAGS, flags);
    }

    public long msixEntryAddr(int vector) {
        return barAddress(msixTableBar) + msixTableOffset + (long) vector * MSIX_ENTRY_SIZE;
    }

    public void programVector(int vector, boolean masked) {
        long e = msixEntryAddr(vector);
        mmioWrite(e + MSIX_ENTRY_LOWER_ADDR, 4, 0xfee0_0000L);
        mmioWrite(e + MSIX_ENTRY_UPPER_ADDR, 4, 0);
        mmioWrite(e + MSIX_ENTRY_DATA, 4, 0x40 + vector);
        mmioWrite(e + MSIX_ENTRY_VECTOR_CTRL, 4, masked ? MSIX_ENTRY_CTRL_MASKBIT : 0);
    }

    public boolean pbaPending(int vector) {
        long bits = mmioRead(barAddress(msixPbaBar) + msixPbaOffset + 8L * (vector / 64), 8);
        return (bits & (1L << (vector % 64))) != 0;
    }

    public void disableMsix() {
        setMsixControl(false, false);
    }

    /** Enables MSI-X with every vector programmed and unmasked. */
    public void enableMsix() {
        for (int v = 0; v < msixVectors; v++) {
            programVector(v, false);
        }
        setMsixControl(true, false);
    }

    // ------------------------------------------------------------------ VIRTIO_PCI_CAP_PCI_CFG window

    public void pciCfgSetup(int bar, long offset, int len) {
        t.configWrite(pciCfgCap + CAP_BAR, 1, bar);
        cfgWrite32(pciCfgCap + CAP_OFFSET, (int) offset);
        cfgWrite32(pciCfgCap + CAP_LENGTH, len);
    }

    public int pciCfgRead(int bar, long offset, int len) {
        pciCfgSetup(bar, offset, len);
        int v = cfg32(pciCfgCap + PCI_CFG_DATA);
        return len == 4 ? v : v & ((1 << (8 * len)) - 1);
    }

    public void pciCfgWrite(int bar, long offset, int len, int value) {
        pciCfgSetup(bar, offset, len);
        cfgWrite32(pciCfgCap + PCI_CFG_DATA, value);
    }
}
