package io.vblk.firmware;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.Test;

/** BAR sizing and assignment against a fake configuration space behind ports 0xCF8/0xCFC. */
class PciBusTest {

    /** One function at 00:04.0 with a 32-bit 4 KiB BAR1 and a 64-bit 16 KiB BAR4, plus the mechanism-#1 ports. */
    static final class FakePlatform extends NullPlatform {
        final int[] cfg = new int[64];
        final long[] sizes = {0, 4096, 0, 0, 16384, 0};
        int address;

        FakePlatform() {
            cfg[0] = 0x10421af4;
            cfg[4 + 1] = 0; // BAR1: 32-bit memory
            cfg[4 + 4] = 0x4 | 0x8; // BAR4: 64-bit prefetchable
        }

        private int reg() {
            return (address & 0xfc) >> 2;
        }

        private boolean selected() {
            return (address & 0x80000000) != 0 && ((address >> 8) & 0xffff) == (4 << 3);
        }

        @Override
        public void out(int port, int size, int value) {
            if (port == PciConfig.ADDRESS_PORT) {
                address = value;
            } else if (port >= PciConfig.DATA_PORT && selected()) {
                int r = reg();
                if (size == 2) {
                    int shift = (port & 2) * 8;
                    cfg[r] = (cfg[r] & ~(0xffff << shift)) | (value & 0xffff) << shift;
                    return;
                }
                if (r >= 4 && r < 10) {
                    int bar = r - 4;
                    long size64 = sizes[bar];
                    boolean upper = bar == 5 && sizes[4] != 0;
                    if (upper) {
                        cfg[r] = value & (int) (-sizes[4] >>> 32);
                    } else if (size64 != 0) {
                        cfg[r] = (value & (int) -size64) | (cfg[r] & 0xf);
                    }
                    return;
                }
                cfg[r] = value;
            }
        }

        @Override
        public int in(int port, int size) {
            if (!selected()) {
                return -1;
            }
            int v = cfg[reg()];
            if (size == 4) {
                return v;
            }
            int shift = (port & 3) * 8;
            return (v >>> shift) & (size == 2 ? 0xffff : 0xff);
        }
    }

    @Test
    void barsAreSizedAlignedAndDecodingEnabled() {
        FakePlatform p = new FakePlatform();
        PciConfig cfg = new PciConfig(p);
        PciBus bus = new PciBus(cfg);
        List<PciDevice> found = bus.scan();
        assertEquals(1, found.size());
        PciDevice d = found.get(0);
        assertEquals("00:04.0", d.name());
        assertEquals(0x1042, d.device);
        bus.assignBars(d);
        assertEquals(PciBus.MMIO_WINDOW, d.bar[1]);
        assertEquals(0, d.bar[4] % 16384, "naturally aligned");
        assertTrue(d.bar[4] >= d.bar[1] + 4096, "no overlap");
        assertEquals(d.bar[4], (p.cfg[8] & 0xfffffff0L) | ((long) p.cfg[9] << 32));
        assertEquals(PciBus.CMD_MEMORY | PciBus.CMD_BUS_MASTER, p.cfg[1] & 0xffff);
    }
}
