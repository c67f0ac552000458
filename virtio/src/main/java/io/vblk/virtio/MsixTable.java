package io.vblk.virtio;

import static io.vblk.virtio.VirtioPciRegs.MSIX_ENTRY_CTRL_MASKBIT;
import static io.vblk.virtio.VirtioPciRegs.MSIX_ENTRY_SIZE;
import static io.vblk.virtio.VirtioPciRegs.MSIX_ENTRY_VECTOR_CTRL;

import java.util.Arrays;

import io.vblk.aio.EventNotifier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The MSI-X table and pending-bit array of one PCI function, living in their
 * own BAR (QEMU's hw/pci/msix.c with {@code msix_init_exclusive_bar}), and
 * the per-vector guest notifiers interrupts are delivered through.
 *
 * <p>Delivery is the caller's choice, passed as a {@link Delivery}: the
 * vector's irqfd ({@link #notifier}) or the machine's interrupt controller
 * with the vector's message (address/data). Masking follows the PCI rules: a
 * message for a masked vector (or while the function is masked) sets its
 * pending bit, and unmasking delivers it.
 *
 * <p>Layout: the table at offset 0, the PBA at half the BAR size; the BAR is
 * at least 4 KiB. Thread-safe: vCPUs program it while device threads raise
 * vectors.
 */
final class MsixTable implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MsixTable.class);

    /** How an unmasked vector reaches the guest. Called with the table's lock held: must not block. */
    @FunctionalInterface
    interface Delivery {
        void deliver(int vector, long address, int data);
    }

    private final String owner;
    private final int vectors;
    private final byte[] table;
    private final long[] pending;
    private final EventNotifier[] notifiers;
    private final long barSize;
    private final int pbaOffset;
    private volatile boolean enabled;
    private boolean functionMasked;

    MsixTable(String owner, int vectors) {
        if (vectors < 1 || vectors > 2048) {
            throw new IllegalArgumentException("MSI-X supports 1..2048 vectors, not " + vectors);
        }
        this.owner = owner;
        this.vectors = vectors;
        this.table = new byte[vectors * MSIX_ENTRY_SIZE];
        this.pending = new long[(vectors + 63) / 64];
        long need = 2L * Math.max(table.length, pending.length * 8);
        long size = 4096;
        while (size < need) {
            size <<= 1;
        }
        this.barSize = size;
        this.pbaOffset = (int) (size / 2);
        this.notifiers = new EventNotifier[vectors];
        try {
            for (int i = 0; i < vectors; i++) {
                notifiers[i] = new EventNotifier();
            }
        } catch (RuntimeException e) {
            close();
            throw e;
        }
        maskAll();
    }

    int vectors() {
        return vectors;
    }

    long barSize() {
        return barSize;
    }

    int tableOffset() {
        return 0;
    }

    int pbaOffset() {
        return pbaOffset;
    }

    /** The irqfd of {@code vector}: signalled when the guest is interrupted with it. */
    EventNotifier notifier(int vector) {
        return notifiers[vector];
    }

    boolean isEnabled() {
        return enabled;
    }

    /** The message control bits the guest wrote (enable, function mask); unmasking delivers pending vectors. */
    synchronized void setControl(boolean enable, boolean maskAll, Delivery d) {
        enabled = enable;
        functionMasked = maskAll;
        deliverUnmaskedPending(d);
    }

    /** The message address of {@code vector}'s table entry. */
    synchronized long address(int vector) {
        int e = vector * MSIX_ENTRY_SIZE;
        return (u32(e + VirtioPciRegs.MSIX_ENTRY_UPPER_ADDR) << 32) | u32(e + VirtioPciRegs.MSIX_ENTRY_LOWER_ADDR);
    }

    /** The message data of {@code vector}'s table entry. */
    synchronized int data(int vector) {
        return (int) u32(vector * MSIX_ENTRY_SIZE + VirtioPciRegs.MSIX_ENTRY_DATA);
    }

    private long u32(int off) {
        return (table[off] & 0xffL) | (table[off + 1] & 0xffL) << 8 | (table[off + 2] & 0xffL) << 16
                | (table[off + 3] & 0xffL) << 24;
    }

    /** A BAR read: table bytes, or pending bits; anything else 0. */
    synchronized long read(long off, int size) {
        long v = 0;
        for (int i = size - 1; i >= 0; i--) {
            v = (v << 8) | readByte(off + i);
        }
        return v;
    }

    private int readByte(long off) {
        if (off >= 0 && off < table.length) {
            return table[(int) off] & 0xff;
        }
        long p = off - pbaOffset;
        if (p >= 0 && p < pending.length * 8L) {
            return (int) (pending[(int) (p / 8)] >>> (8 * (p % 8))) & 0xff;
        }
        return 0;
    }

    /** A BAR write: table entries are writable, the PBA is read-only. */
    synchronized void write(long off, int size, long value, Delivery d) {
        boolean touched = false;
        for (int i = 0; i < size; i++) {
            long o = off + i;
            if (o >= 0 && o < table.length) {
                table[(int) o] = (byte) (value >>> (8 * i));
                touched = true;
            }
        }
        if (touched) {
            deliverUnmaskedPending(d);
        }
    }

    /** Delivers {@code vector} through {@code d}, or marks it pending while masked. Any thread. */
    synchronized void notify(int vector, Delivery d) {
        if (vector < 0 || vector >= vectors) {
            return;
        }
        if (!enabled) {
            LOG.debug("{}: MSI-X vector {} raised while MSI-X is disabled; dropped", owner, vector);
            return;
        }
        if (functionMasked || entryMasked(vector)) {
            pending[vector / 64] |= 1L << (vector % 64);
            return;
        }
        d.deliver(vector, address(vector), data(vector));
    }

    boolean isPending(int vector) {
        synchronized (this) {
            return (pending[vector / 64] & (1L << (vector % 64))) != 0;
        }
    }

    private boolean entryMasked(int vector) {
        return (table[vector * MSIX_ENTRY_SIZE + MSIX_ENTRY_VECTOR_CTRL] & MSIX_ENTRY_CTRL_MASKBIT) != 0;
    }

    private void deliverUnmaskedPending(Delivery d) {
        if (!enabled || functionMasked) {
            return;
        }
        for (int v = 0; v < vectors; v++) {
            long bit = 1L << (v % 64);
            if ((pending[v / 64] & bit) != 0 && !entryMasked(v)) {
                pending[v / 64] &= ~bit;
                d.deliver(v, address(v), data(v));
            }
        }
    }

    private void maskAll() {
        for (int v = 0; v < vectors; v++) {
            table[v * MSIX_ENTRY_SIZE + MSIX_ENTRY_VECTOR_CTRL] = MSIX_ENTRY_CTRL_MASKBIT;
        }
    }

    /** A PCI function reset: disabled, every entry cleared and masked, nothing pending. */
    synchronized void reset() {
        enabled = false;
        functionMasked = false;
        Arrays.fill(table, (byte) 0);
        Arrays.fill(pending, 0);
        maskAll();
    }

    @Override
    public void close() {
        for (EventNotifier n : notifiers) {
            if (n != null) {
                n.close();
            }
        }
    }
}
