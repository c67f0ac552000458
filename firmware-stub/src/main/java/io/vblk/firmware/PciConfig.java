package io.vblk.firmware;

/**
 * PCI configuration mechanism #1: an address written to port 0xCF8, data
 * at 0xCFC..0xCFF (SeaBIOS's {@code pci_config_read*}). {@code bdf} is
 * bus&lt;&lt;8 | device&lt;&lt;3 | function.
 */
final class PciConfig {
    static final int ADDRESS_PORT = 0xcf8;
    static final int DATA_PORT = 0xcfc;

    private final Platform p;

    PciConfig(Platform p) {
        this.p = p;
    }

    private void select(int bdf, int reg) {
        p.out(ADDRESS_PORT, 4, 0x80000000 | (bdf << 8) | (reg & 0xfc));
    }

    int read32(int bdf, int reg) {
        select(bdf, reg);
        return p.in(DATA_PORT, 4);
    }

    int read16(int bdf, int reg) {
        select(bdf, reg);
        return p.in(DATA_PORT + (reg & 2), 2) & 0xffff;
    }

    int read8(int bdf, int reg) {
        select(bdf, reg);
        return p.in(DATA_PORT + (reg & 3), 1) & 0xff;
    }

    void write32(int bdf, int reg, int value) {
        select(bdf, reg);
        p.out(DATA_PORT, 4, value);
    }

    void write16(int bdf, int reg, int value) {
        select(bdf, reg);
        p.out(DATA_PORT + (reg & 2), 2, value & 0xffff);
    }

    static String name(int bdf) {
        return String.format("%02x:%02x.%x", bdf >> 8, (bdf >> 3) & 0x1f, bdf & 7);
    }
}
