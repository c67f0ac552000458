package io.vblk.guest;

import io.vblk.virtio.VirtioPciTransport;

/** A virtio-pci transport plugged into the machine's PCI host. */
final class VirtioPciFunction implements PciFunction {
    private final VirtioPciTransport t;

    VirtioPciFunction(VirtioPciTransport t) {
        this.t = t;
    }

    @Override
    public int configRead(int offset, int size) {
        return t.configRead(offset, size);
    }

    @Override
    public void configWrite(int offset, int size, int value) {
        t.configWrite(offset, size, value);
    }

    @Override
    public long barAddress(int bar) {
        return t.barAddress(bar);
    }

    @Override
    public long barSize(int bar) {
        return t.barSize(bar);
    }

    @Override
    public boolean memoryEnabled() {
        return t.memoryEnabled();
    }

    @Override
    public long mmioRead(int bar, long offset, int size) {
        return t.mmioRead(bar, offset, size);
    }

    @Override
    public void mmioWrite(int bar, long offset, int size, long value) {
        t.mmioWrite(bar, offset, size, value);
    }

    @Override
    public boolean isDoorbell(int bar, long offset) {
        return t.isDoorbell(bar, offset);
    }
}
