package io.vblk.bench.virtio;

import static io.vblk.virtio.VirtioPciRegs.COMMON_GF;
import static io.vblk.virtio.VirtioPciRegs.COMMON_GFSELECT;
import static io.vblk.virtio.VirtioPciRegs.COMMON_Q_AVAILHI;
import static io.vblk.virtio.VirtioPciRegs.COMMON_Q_AVAILLO;
import static io.vblk.virtio.VirtioPciRegs.COMMON_Q_DESCHI;
import static io.vblk.virtio.VirtioPciRegs.COMMON_Q_DESCLO;
import static io.vblk.virtio.VirtioPciRegs.COMMON_Q_ENABLE;
import static io.vblk.virtio.VirtioPciRegs.COMMON_Q_SELECT;
import static io.vblk.virtio.VirtioPciRegs.COMMON_Q_SIZE;
import static io.vblk.virtio.VirtioPciRegs.COMMON_Q_USEDHI;
import static io.vblk.virtio.VirtioPciRegs.COMMON_Q_USEDLO;
import static io.vblk.virtio.VirtioPciRegs.COMMON_STATUS;

import java.lang.invoke.VarHandle;
import java.time.Duration;

import io.vblk.bench.aio.InContextRunner;
import io.vblk.aio.AioContext;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.NullDriver;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.HostMemory;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioPciTransport;
import io.vblk.virtio.VirtioRing;
import io.vblk.virtio.VirtioStatus;
import io.vblk.virtio.blk.VirtioBlk;
import io.vblk.virtio.blk.VirtioBlkConfig;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * One virtio-blk device on a {@code null} disk, served entirely inside one
 * IOThread ({@code poll-max-ns} 0) that is the device's home context and the
 * backend's, with a minimal driver side that writes the split ring in guest
 * RAM, for the request-path benchmarks.
 *
 * <p>Set-up is done as a guest would, through the virtio-pci function's
 * common configuration registers: reset, ACKNOWLEDGE, DRIVER, VERSION_1,
 * FEATURES_OK, queue 0 of 256 entries, DRIVER_OK. The driver polls: it sets
 * {@code VRING_AVAIL_F_NO_INTERRUPT}, so the device checks whether to
 * interrupt (a full fence and a load) and does not.
 *
 * <p>Each request uses a fixed slot of three descriptors (header 16 bytes
 * device-readable, 4 KiB data and 1 status byte device-writable), QEMU and
 * Linux's layout for a 4 KiB read. The driver writes the three descriptors,
 * the header and the avail entry for every request, as Linux's
 * {@code virtqueue_add_split} does.
 *
 * <p>{@link #run(Runnable)} is the batching of
 * {@link InContextRunner}: a BH made once runs a whole JMH
 * invocation's requests in the IOThread and releases its hold on the context
 * lock meanwhile, so every {@code poll(false)} takes the lock afresh as an
 * event-loop iteration does. Nothing is allocated per batch.
 */
final class VirtioBlkRig implements AutoCloseable {
    static final int QSIZE = 256;
    static final int SLOTS = QSIZE / 3;
    static final int REQ = 4096;
    static final long DISK = 64L << 20;
    static final long SECTOR_MASK = DISK / 512 - 8;

    static final long RING = 0x10000;
    static final long BUFFERS = 0x100000;
    static final long SLOT_BYTES = 0x2000;

    private final MainLoop loop;
    private final BlockLayer layer;
    final AioContext ctx;
    final BlockBackend blk;
    final GuestMemory mem;
    final VirtioBlk dev;
    final VirtioPciTransport transport;
    private final InContextRunner runner;

    // driver side: host addresses of the rings and of each slot's buffers
    final long desc;
    final long availFlags;
    final long availIdxAddr;
    final long availRing;
    final long usedIdxAddr;
    final long usedRing;
    final long[] hdrGpa = new long[SLOTS];
    final long[] dataGpa = new long[SLOTS];
    final long[] statusGpa = new long[SLOTS];
    final long[] hdrHva = new long[SLOTS];
    final long[] statusHva = new long[SLOTS];
    int availIdx;
    int lastUsed;

    VirtioBlkRig(boolean readZeroes) {
        loop = new MainLoop();
        layer = new BlockLayer(loop);
        IOThread io = loop.newIOThread("bench-vblk", 0);
        ctx = io.context();
        mem = GuestMemory.allocate(0, 16L << 20);
        blk = watchdog().call("open the disk", () -> {
            BlockNode n = layer.openNull("disk", new NullDriver.Options(DISK, readZeroes, 0));
            BlockBackend b = layer.newBackend("blk0");
            b.attach(n);
            n.unref();
            b.setAioContext(ctx);
            return b;
        });
        dev = new VirtioBlk("bench-blk", blk, new VirtioBlkConfig(1, QSIZE, "bench", true), ctx, mem);
        transport = new VirtioPciTransport(dev);

        long descGpa = RING;
        long availGpa = descGpa + VirtioRing.descTableSize(QSIZE);
        long usedGpa = (availGpa + VirtioRing.availSize(QSIZE) + 3) & ~3L;
        desc = mem.translate(descGpa, VirtioRing.descTableSize(QSIZE));
        availFlags = mem.translate(availGpa, VirtioRing.availSize(QSIZE));
        availIdxAddr = availFlags + VirtioRing.AVAIL_IDX;
        availRing = availFlags + VirtioRing.AVAIL_RING;
        long used = mem.translate(usedGpa, VirtioRing.usedSize(QSIZE));
        usedIdxAddr = used + VirtioRing.USED_IDX;
        usedRing = used + VirtioRing.USED_RING;
        for (int s = 0; s < SLOTS; s++) {
            long base = BUFFERS + SLOT_BYTES * s;
            hdrGpa[s] = base;
            statusGpa[s] = base + 64;
            dataGpa[s] = base + 0x1000;
            hdrHva[s] = mem.translate(hdrGpa[s], 16);
            statusHva[s] = mem.translate(statusGpa[s], 1);
        }

        // a polling guest's initialisation, through the common configuration registers
        common(COMMON_STATUS, 1, 0);
        common(COMMON_STATUS, 1, VirtioStatus.ACKNOWLEDGE);
        common(COMMON_STATUS, 1, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
        common(COMMON_GFSELECT, 4, 1);
        common(COMMON_GF, 4, VirtioFeatures.VERSION_1 >>> 32);
        int s = VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK;
        common(COMMON_STATUS, 1, s);
        common(COMMON_Q_SELECT, 2, 0);
        common(COMMON_Q_SIZE, 2, QSIZE);
        common(COMMON_Q_DESCLO, 4, descGpa & 0xffff_ffffL);
        common(COMMON_Q_DESCHI, 4, descGpa >>> 32);
        common(COMMON_Q_AVAILLO, 4, availGpa & 0xffff_ffffL);
        common(COMMON_Q_AVAILHI, 4, availGpa >>> 32);
        common(COMMON_Q_USEDLO, 4, usedGpa & 0xffff_ffffL);
        common(COMMON_Q_USEDHI, 4, usedGpa >>> 32);
        common(COMMON_Q_ENABLE, 2, 1);
        HostMemory.putShortLE(availFlags, 1); // VRING_AVAIL_F_NO_INTERRUPT: the driver polls
        common(COMMON_STATUS, 1, s | VirtioStatus.DRIVER_OK);
        watchdog().await("DRIVER_OK delivered", ctx.run("settle", () -> { }));
        watchdog().await("DRIVER_OK delivered", ctx.run("settle", () -> { }));
        if (transport.mmioRead(VirtioPciTransport.VIRTIO_BAR, COMMON_STATUS, 1) != (s | VirtioStatus.DRIVER_OK)) {
            throw new IllegalStateException("the device did not accept DRIVER_OK");
        }
        runner = new InContextRunner(ctx, "bench-vblk-batch");
    }

    private void common(int off, int size, long value) {
        transport.mmioWrite(VirtioPciTransport.VIRTIO_BAR, VirtioPciTransport.COMMON_CFG_OFFSET + off, size, value);
    }

    /** Driver: writes request slot {@code s} (3 descriptors, header, preset status) and its avail entry. */
    void add(int s, long sector) {
        int head = 3 * s;
        long d = desc + 16L * head;
        HostMemory.putLongLE(d, hdrGpa[s]);
        HostMemory.putIntLE(d + 8, 16);
        HostMemory.putShortLE(d + 12, 1); // NEXT
        HostMemory.putShortLE(d + 14, head + 1);
        HostMemory.putLongLE(d + 16, dataGpa[s]);
        HostMemory.putIntLE(d + 24, REQ);
        HostMemory.putShortLE(d + 28, 3); // NEXT | WRITE
        HostMemory.putShortLE(d + 30, head + 2);
        HostMemory.putLongLE(d + 32, statusGpa[s]);
        HostMemory.putIntLE(d + 40, 1);
        HostMemory.putShortLE(d + 44, 2); // WRITE
        HostMemory.putShortLE(d + 46, 0);
        HostMemory.putIntLE(hdrHva[s], VirtioBlkAbi.T_IN);
        HostMemory.putIntLE(hdrHva[s] + 4, 0);
        HostMemory.putLongLE(hdrHva[s] + 8, sector);
        HostMemory.putU8(statusHva[s], 0xff);
        HostMemory.putShortLE(availRing + 2L * (availIdx & (QSIZE - 1)), head);
        availIdx = (availIdx + 1) & 0xffff;
    }

    /** Driver: publishes what was added (release fence, then avail.idx). */
    void publish() {
        VarHandle.releaseFence();
        HostMemory.putShortLE(availIdxAddr, availIdx);
    }

    /**
     * Polls the context without blocking until the device has used everything
     * published, then reaps the used entries and checks each request's id,
     * length and status. A request that does not complete within 1000 polls
     * fails the run.
     */
    void completeAll() {
        for (int polls = 0; HostMemory.getU16LE(usedIdxAddr) != availIdx; polls++) {
            if (polls == 1000) {
                throw new IllegalStateException("a request did not complete within 1000 polls:\n" + transport.describe());
            }
            ctx.poll(false);
        }
        VarHandle.acquireFence();
        while (lastUsed != availIdx) {
            long e = usedRing + 8L * (lastUsed & (QSIZE - 1));
            int id = HostMemory.getIntLE(e);
            int len = HostMemory.getIntLE(e + 4);
            int s = id / 3;
            if (id % 3 != 0 || s >= SLOTS || len != REQ + 1 || HostMemory.getU8(statusHva[s]) != VirtioBlkAbi.S_OK) {
                throw new IllegalStateException("bad completion: id " + id + " len " + len);
            }
            lastUsed = (lastUsed + 1) & 0xffff;
        }
    }

    Watchdog watchdog() {
        return loop.watchdog(Duration.ofSeconds(30));
    }

    /** Runs {@code b} once in the IOThread and waits for it. */
    void run(Runnable b) {
        runner.run(b);
    }

    @Override
    public void close() {
        try {
            dev.writeStatus(0);
            watchdog().run("close the disk", () -> {
                blk.setAioContext(loop.context());
                layer.removeBackend(blk);
            });
        } finally {
            layer.close();
            loop.close();
            transport.close();
            mem.close();
        }
    }
}
