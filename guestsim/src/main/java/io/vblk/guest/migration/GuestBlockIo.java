package io.vblk.guest.migration;

import io.vblk.guest.BlkQueue;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.InterruptLine;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachinePlatform;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.time.Duration;

/**
 * Plain synchronous block I/O from the guest through the Linux-like
 * driver's first queue, one request at a time, as a check program does
 * ({@code dd} then {@code cmp}): each 512-byte sector is stamped with its
 * LBA and a tag — the same pattern the verify-mode workload writes — so a
 * read proves the right data reached the right place. The programs run on
 * vCPU 0 and reach the device only as hardware.
 */
public final class GuestBlockIo {
    public static final int BLOCK = 4096;
    private static final int SECTORS = BLOCK / 512;

    private final Machine machine;
    private final BlkQueue q;

    /** Uses queue 0 of a probed driver; its request slot is allocated here. */
    public GuestBlockIo(Machine machine, LinuxGuest guest) {
        this.machine = machine;
        this.q = guest.driver().queue(0);
        q.allocateSlots(1, BLOCK);
    }

    /** Writes blocks [first, first+count) stamped with {@code tag}; returns null or the first problem. */
    public String write(long firstBlock, int count, long tag, Duration bound) {
        return machine.await("guest write", machine.runOnVcpu(0, "write check", p -> {
            for (int i = 0; i < count; i++) {
                long lba = (firstBlock + i) * SECTORS;
                GuestWorkload.stamp(p, q.buffer(0), lba, SECTORS, tag);
                String e = io(p, VirtioBlkAbi.T_OUT, lba);
                if (e != null) {
                    return e;
                }
            }
            return null;
        }), bound);
    }

    /** Reads blocks [first, first+count) and checks every sector carries {@code tag}; null or the first problem. */
    public String verify(long firstBlock, int count, long tag, Duration bound) {
        return machine.await("guest read-back", machine.runOnVcpu(0, "read check", p -> {
            for (int i = 0; i < count; i++) {
                long lba = (firstBlock + i) * SECTORS;
                String e = io(p, VirtioBlkAbi.T_IN, lba);
                if (e != null) {
                    return e;
                }
                e = check(p, q.buffer(0), lba, tag);
                if (e != null) {
                    return e;
                }
            }
            return null;
        }), bound);
    }

    private String io(MachinePlatform p, int type, long lba) {
        q.submit(0, type, lba, BLOCK);
        q.kick();
        InterruptLine irq = p.interrupts();
        for (;;) {
            int slot = q.reap();
            if (slot >= 0) {
                int st = q.status(slot);
                return st == VirtioBlkAbi.S_OK ? null : (type == VirtioBlkAbi.T_IN ? "read" : "write") + " of sector " + lba
                        + ": status " + st;
            }
            if (!q.enableInterrupts()) {
                continue;
            }
            irq.await(-1); // a lost interrupt hangs here, for the caller's watchdog to report, as in GuestWorkload
        }
    }

    /** Null if the block at {@code gpa} is stamped for {@code lba} with {@code tag}, else what it holds. */
    public static String check(MachinePlatform p, long gpa, long lba, long tag) {
        for (int i = 0; i < SECTORS; i++) {
            long a = gpa + 512L * i;
            long l = p.ramRead64(a);
            long t = p.ramRead64(a + 8);
            long x = p.ramRead64(a + 504);
            if (l != lba + i || t != tag || x != ((lba + i) ^ tag)) {
                return "sector " + (lba + i) + " holds lba=" + l + " tag=" + t + ", expected tag " + tag;
            }
        }
        return null;
    }
}
