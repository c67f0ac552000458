package io.vblk.firmware;

/**
 * PCI configuration mechanism #1: an address written to port 0xCF8, data
 * at 0xCFC..0xCFF (SeaBIOS's {@code pci_config_read*}). {@code bdf} is
 * bus&lt;&lt;8 | device&lt;&lt;3 | function. Shared by the guests (firmware and
 * the Linux-like driver), as both only see hardware.
 */
public final class PciConfig {
    public static final int ADDRESS_PORT = 0xcf8;
    public static final int DATA_PORT = 0xcfc;

    private final Platform p;

    public PciConfig(Platform p) {
        this.p = p;
    }

    private void select(int bdf, int reg) {
        p.out(ADDRESS_PORT, 4, 0x80000000 | (bdf << 8) | (reg & 0xfc));
    }

    /** The BAR's assigned base address (64-bit BARs combine two registers), or 0. */
    public long barAddress(int bdf, int bar) {
        int reg = 0x10 + 4 * bar;
        int lo = read32(bdf, reg);
        if ((lo & 1) != 0) {
            return 0;
        }
        long base = lo & 0xfffffff0L;
        if (((lo >> 1) & 3) == 2) {
            base |= (long) read32(bdf, reg + 4) << 32;
        }
        return base;
    }

    /** The offset of the first capability with {@code id}, or 0. */
    public int findCapability(int bdf, int id) {
        if ((read16(bdf, 0x06) & 0x10) == 0) {
            return 0;
        }
        int pos = read8(bdf, 0x34) & 0xfc;
        for (int guard = 0; pos != 0 && guard < 48; guard++) {
            if (read8(bdf, pos) == id) {
                return pos;
            }
            pos = read8(bdf, pos + 1) & 0xfc;
        }
        return 0;
    }

    public int read32(int bdf, int reg) {
        select(bdf, reg);
        return p.in(DATA_PORT, 4);
    }

    public int read16(int bdf, int reg) {
        select(bdf, reg);
        return p.in(DATA_PORT + (reg & 2), 2) & 0xffff;
    }

    public int read8(int bdf, int reg) {
        select(bdf, reg);
        return p.in(DATA_PORT + (reg & 3), 1) & 0xff;
    }

    public void write32(int bdf, int reg, int value) {
        select(bdf, reg);
        p.out(DATA_PORT, 4, value);
    }

    public void write16(int bdf, int reg, int value) {
        select(bdf, reg);
        p.out(DATA_PORT + (reg & 2), 2, value & 0xffff);
    }

    public static String name(int bdf) {
        return String.format("%02x:%02x.%x", bdf >> 8, (bdf >> 3) & 0x1f, bdf & 7);
    }
}
