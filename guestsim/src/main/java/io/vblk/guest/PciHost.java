package io.vblk.guest;

/**
 * The host bridge of bus 0: configuration mechanism #1 (0xCF8 address,
 * 0xCFC..0xCFF data) and decoding of memory accesses to the BARs the guest
 * assigned. The decode table is rebuilt only after a configuration write,
 * so a doorbell write costs a short scan, not a walk of every BAR.
 */
final class PciHost {
    static final int CONFIG_ADDRESS = 0xcf8;
    static final int CONFIG_DATA = 0xcfc;

    private final PciFunction[] slots = new PciFunction[32];
    private volatile int address;
    private volatile Window[] windows = new Window[0];
    private volatile int configVersion;
    private int builtVersion = -1;

    /** One decoded BAR. */
    record Window(long start, long end, PciFunction fn, int bar) {
    }

    void plug(int slot, PciFunction fn) {
        if (slots[slot] != null) {
            throw new IllegalStateException("PCI slot " + slot + " is taken");
        }
        slots[slot] = fn;
        configVersion++;
    }

    boolean handlesPort(int port) {
        return port >= CONFIG_ADDRESS && port < CONFIG_DATA + 4;
    }

    int portRead(int port, int size) {
        if (port == CONFIG_ADDRESS) {
            return address;
        }
        PciFunction fn = selected();
        if (fn == null) {
            return size == 4 ? -1 : (1 << (size * 8)) - 1;
        }
        return fn.configRead((address & 0xfc) + (port - CONFIG_DATA), size);
    }

    void portWrite(int port, int size, int value) {
        if (port == CONFIG_ADDRESS) {
            address = value;
            return;
        }
        PciFunction fn = selected();
        if (fn != null) {
            fn.configWrite((address & 0xfc) + (port - CONFIG_DATA), size, value);
            configVersion++; // a BAR or the command register may have changed
        }
    }

    private PciFunction selected() {
        int a = address;
        if ((a & 0x80000000) == 0) {
            return null;
        }
        int bus = (a >> 16) & 0xff;
        int dev = (a >> 11) & 0x1f;
        int fn = (a >> 8) & 7;
        return bus == 0 && fn == 0 ? slots[dev] : null;
    }

    /** The BAR window decoding {@code addr}, or null. Allocation-free: doorbells pass here. */
    Window decode(long addr) {
        Window[] w = windows;
        if (builtVersion != configVersion) {
            w = rebuild();
        }
        for (Window x : w) {
            if (addr >= x.start && addr < x.end) {
                return x;
            }
        }
        return null;
    }

    private synchronized Window[] rebuild() {
        int version = configVersion;
        java.util.List<Window> l = new java.util.ArrayList<>();
        for (PciFunction fn : slots) {
            if (fn == null || !fn.memoryEnabled()) {
                continue;
            }
            for (int bar = 0; bar < 6; bar++) {
                long a = fn.barAddress(bar);
                long size = fn.barSize(bar);
                if (a != 0 && size != 0) {
                    l.add(new Window(a, a + size, fn, bar));
                }
            }
        }
        Window[] w = l.toArray(new Window[0]);
        windows = w;
        builtVersion = version;
        return w;
    }
}
