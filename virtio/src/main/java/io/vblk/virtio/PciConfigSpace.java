package io.vblk.virtio;

import java.util.Arrays;

import static io.vblk.virtio.VirtioPciRegs.BAR0;
import static io.vblk.virtio.VirtioPciRegs.BAR_MEM_PREFETCH;
import static io.vblk.virtio.VirtioPciRegs.BAR_MEM_TYPE_64;
import static io.vblk.virtio.VirtioPciRegs.CAPABILITY_LIST;
import static io.vblk.virtio.VirtioPciRegs.COMMAND;
import static io.vblk.virtio.VirtioPciRegs.STATUS;
import static io.vblk.virtio.VirtioPciRegs.STATUS_CAP_LIST;
import static io.vblk.virtio.VirtioPciRegs.STATUS_INTERRUPT;

/**
 * The 256-byte configuration space of a PCI type-0 function: QEMU's
 * {@code PCIDevice} config/wmask bytes plus memory BARs with the standard
 * sizing protocol (a BAR reads back its address with the low
 * {@code log2(size)} bits clear, so writing all-ones reveals the size) and a
 * capability list. Holds no virtio knowledge; not thread-safe (the
 * transport's lock guards it).
 */
final class PciConfigSpace {
    static final int SIZE = 256;
    private static final int FIRST_CAP = 0x40;

    private final byte[] cfg = new byte[SIZE];
    private final byte[] wmask = new byte[SIZE];
    private byte[] initialCfg;
    private final long[] barSize = new long[6];
    private final int[] barFlags = new int[6];
    private final boolean[] barUpperHalf = new boolean[6];
    private final long[] barAddr = new long[6];
    private int lastCap;
    private int nextCap = FIRST_CAP;

    // ------------------------------------------------------------------ building

    void setU8(int off, int v) {
        cfg[off] = (byte) v;
    }

    void setU16(int off, int v) {
        setU8(off, v);
        setU8(off + 1, v >>> 8);
    }

    void setU32(int off, int v) {
        setU16(off, v);
        setU16(off + 2, v >>> 16);
    }

    int u8(int off) {
        return cfg[off] & 0xff;
    }

    int u16(int off) {
        return u8(off) | u8(off + 1) << 8;
    }

    int u32(int off) {
        return u16(off) | u16(off + 2) << 16;
    }

    /** Makes the bits of {@code mask} (little-endian over {@code len} bytes at {@code off}) guest-writable. */
    void setWritable(int off, int len, long mask) {
        for (int i = 0; i < len; i++) {
            wmask[off + i] = (byte) (mask >>> (8 * i));
        }
    }

    /** A memory BAR of {@code size} bytes (a power of two, at least 16); a 64-bit BAR also takes slot index + 1. */
    void defineMemoryBar(int index, long size, boolean is64, boolean prefetchable) {
        if (size < 16 || Long.bitCount(size) != 1) {
            throw new IllegalArgumentException("BAR size must be a power of two >= 16, got " + size);
        }
        if (is64 && index >= 5) {
            throw new IllegalArgumentException("a 64-bit BAR needs two slots; BAR" + index + " has one");
        }
        barSize[index] = size;
        barFlags[index] = (is64 ? BAR_MEM_TYPE_64 : 0) | (prefetchable ? BAR_MEM_PREFETCH : 0);
        if (is64) {
            barUpperHalf[index + 1] = true;
        }
    }

    /** Appends a capability of {@code len} bytes with id {@code capId} to the list; returns its offset. */
    int addCapability(int capId, int len) {
        int off = nextCap;
        if (off + len > SIZE) {
            throw new IllegalStateException("capabilities overflow the config space");
        }
        setU8(off, capId);
        setU8(off + 1, 0);
        if (lastCap == 0) {
            setU8(CAPABILITY_LIST, off);
        } else {
            setU8(lastCap + 1, off);
        }
        setU16(STATUS, u16(STATUS) | STATUS_CAP_LIST);
        lastCap = off;
        nextCap = (off + len + 3) & ~3;
        return off;
    }

    /** Records the built state as what {@link #reset()} returns to. */
    void seal() {
        initialCfg = cfg.clone();
    }

    /** A PCI function reset: the header back to its built state, BARs unassigned. */
    void reset() {
        System.arraycopy(initialCfg, 0, cfg, 0, SIZE);
        Arrays.fill(barAddr, 0);
    }

    // ------------------------------------------------------------------ guest access

    /** A configuration read of {@code size} bytes; bytes past the space read as 0. */
    int read(int off, int size) {
        int v = 0;
        for (int i = size - 1; i >= 0; i--) {
            v = (v << 8) | readByte(off + i);
        }
        return v;
    }

    private int readByte(int off) {
        if (off < 0 || off >= SIZE) {
            return 0;
        }
        if (off >= BAR0 && off < BAR0 + 24) {
            int bar = (off - BAR0) / 4;
            return (barDword(bar) >>> (8 * ((off - BAR0) & 3))) & 0xff;
        }
        return cfg[off] & 0xff;
    }

    /** A configuration write: only guest-writable bits change; BAR dwords follow the sizing protocol. */
    void write(int off, int size, int value) {
        for (int i = 0; i < size; i++) {
            int o = off + i;
            if (o < 0 || o >= SIZE || (o >= BAR0 && o < BAR0 + 24)) {
                continue;
            }
            int m = wmask[o];
            cfg[o] = (byte) ((cfg[o] & ~m) | ((value >>> (8 * i)) & m));
        }
        for (int bar = 0; bar < 6; bar++) {
            int lo = BAR0 + 4 * bar;
            if (off < lo + 4 && off + size > lo) {
                int d = barDword(bar);
                for (int i = 0; i < size; i++) {
                    int o = off + i;
                    if (o >= lo && o < lo + 4) {
                        int shift = 8 * (o - lo);
                        d = (d & ~(0xff << shift)) | (((value >>> (8 * i)) & 0xff) << shift);
                    }
                }
                writeBarDword(bar, d);
            }
        }
    }

    private int barDword(int bar) {
        if (barUpperHalf[bar]) {
            return (int) (barAddr[bar - 1] >>> 32);
        }
        if (barSize[bar] == 0) {
            return 0;
        }
        return (int) (barAddr[bar] & 0xffff_fff0L) | barFlags[bar];
    }

    private void writeBarDword(int bar, int value) {
        if (barUpperHalf[bar]) {
            int lo = bar - 1;
            barAddr[lo] = ((barAddr[lo] & 0xffff_ffffL) | ((long) value << 32)) & ~(barSize[lo] - 1);
        } else if (barSize[bar] != 0) {
            long high = (barFlags[bar] & BAR_MEM_TYPE_64) != 0 ? barAddr[bar] & 0xffff_ffff_0000_0000L : 0;
            barAddr[bar] = (high | (value & 0xffff_fff0L)) & ~(barSize[bar] - 1);
        }
    }

    // ------------------------------------------------------------------ state the transport and the bus need

    int command() {
        return u16(COMMAND);
    }

    void setInterruptStatus(boolean asserted) {
        int s = u16(STATUS);
        setU16(STATUS, asserted ? s | STATUS_INTERRUPT : s & ~STATUS_INTERRUPT);
    }

    long barAddress(int bar) {
        return barAddr[bar];
    }

    long barSize(int bar) {
        return barSize[bar];
    }

    boolean isBar64(int bar) {
        return (barFlags[bar] & BAR_MEM_TYPE_64) != 0;
    }
}
