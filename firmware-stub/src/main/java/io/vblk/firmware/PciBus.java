package io.vblk.firmware;

import java.util.ArrayList;
import java.util.List;

/**
 * Bus 0 enumeration and BAR assignment, as SeaBIOS's pciinit does before any
 * driver runs: size each BAR (write all ones, read back the mask), place
 * it naturally aligned in a memory window, then enable memory decoding and
 * bus mastering.
 */
final class PciBus {
    static final int VENDOR_ID = 0x00;
    static final int COMMAND = 0x04;
    static final int BAR0 = 0x10;
    static final int CMD_MEMORY = 0x2;
    static final int CMD_BUS_MASTER = 0x4;
    /** Start of the 32-bit MMIO window BARs are placed in. */
    static final long MMIO_WINDOW = 0xc000_0000L;

    private final PciConfig cfg;
    private long next = MMIO_WINDOW;

    PciBus(PciConfig cfg) {
        this.cfg = cfg;
    }

    /** Every function on bus 0 (function 0 of each slot). */
    List<PciDevice> scan() {
        List<PciDevice> found = new ArrayList<>();
        for (int dev = 0; dev < 32; dev++) {
            int bdf = dev << 3;
            int id = cfg.read32(bdf, VENDOR_ID);
            int vendor = id & 0xffff;
            if (vendor == 0xffff || vendor == 0) {
                continue;
            }
            found.add(new PciDevice(bdf, vendor, id >>> 16));
        }
        return found;
    }

    /** Sizes and assigns the memory BARs of {@code d}; I/O BARs are left alone (virtio modern needs none). */
    void assignBars(PciDevice d) {
        int cmd = cfg.read16(d.bdf, COMMAND);
        cfg.write16(d.bdf, COMMAND, cmd & ~(CMD_MEMORY | CMD_BUS_MASTER)); // no decoding while sizing
        for (int i = 0; i < 6; i++) {
            int reg = BAR0 + 4 * i;
            int orig = cfg.read32(d.bdf, reg);
            if ((orig & 1) != 0) {
                continue; // I/O BAR
            }
            boolean is64 = ((orig >> 1) & 3) == 2;
            cfg.write32(d.bdf, reg, 0xffffffff);
            long mask = cfg.read32(d.bdf, reg) & 0xfffffff0L;
            long sizeMask = mask;
            if (is64) {
                cfg.write32(d.bdf, reg + 4, 0xffffffff);
                sizeMask |= ((long) cfg.read32(d.bdf, reg + 4)) << 32;
            } else {
                sizeMask |= 0xffffffff00000000L;
            }
            if (mask == 0) {
                cfg.write32(d.bdf, reg, orig);
                if (is64) {
                    i++;
                }
                continue;
            }
            long size = -sizeMask;
            long base = (next + size - 1) & -size;
            next = base + size;
            cfg.write32(d.bdf, reg, (int) base | (orig & 0xf));
            if (is64) {
                cfg.write32(d.bdf, reg + 4, (int) (base >>> 32));
            }
            d.bar[i] = base;
            if (is64) {
                i++;
            }
        }
        cfg.write16(d.bdf, COMMAND, cmd | CMD_MEMORY | CMD_BUS_MASTER);
    }
}
