package io.vblk.guest;

/**
 * A PCI function as the host bridge sees it: configuration space, BARs and
 * their MMIO. {@link #isDoorbell} names the writes that bypass device
 * emulation entirely (an ioeventfd), as KVM handles them without exiting to
 * QEMU's main loop.
 */
public interface PciFunction {
    int configRead(int offset, int size);

    void configWrite(int offset, int size, int value);

    long barAddress(int bar);

    long barSize(int bar);

    boolean memoryEnabled();

    long mmioRead(int bar, long offset, int size);

    void mmioWrite(int bar, long offset, int size, long value);

    /** Whether a write at (bar, offset) is a doorbell safe to deliver from the vCPU thread directly. */
    boolean isDoorbell(int bar, long offset);
}
