package io.vblk.firmware;

/** A PCI function the firmware found and programmed: its address and assigned BARs. */
final class PciDevice {
    final int bdf;
    final int vendor;
    final int device;
    /** Assigned base address of each BAR (0 when unused); a 64-bit BAR's upper slot stays 0. */
    final long[] bar = new long[6];

    PciDevice(int bdf, int vendor, int device) {
        this.bdf = bdf;
        this.vendor = vendor;
        this.device = device;
    }

    String name() {
        return PciConfig.name(bdf);
    }
}
