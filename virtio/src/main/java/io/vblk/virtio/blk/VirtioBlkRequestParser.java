package io.vblk.virtio.blk;

import io.vblk.block.BlockFlags;
import io.vblk.virtio.HostMemory;
import io.vblk.virtio.VirtQueueElement;

import static io.vblk.virtio.blk.VirtioBlkAbi.*;

/**
 * Turns a popped descriptor chain into one typed outcome: the parsing half
 * of QEMU's {@code virtio_blk_handle_request} (hw/block/virtio-blk.c), with
 * {@code virtio_blk_sect_range_ok} and the parsing part of
 * {@code virtio_blk_handle_discard_write_zeroes}.
 *
 * <p>The outcome is written into the request itself ({@link VirtioBlkReq#kind}
 * and the fields that kind names), so parsing allocates nothing:
 * <ul>
 * <li>{@link VirtioBlkReq.Kind#GUEST_ERROR}: no writable status byte, or a
 *     header shorter than {@code struct virtio_blk_outhdr} — the chain itself
 *     breaks the protocol and the device needs reset;</li>
 * <li>{@link VirtioBlkReq.Kind#ANSWER}: GET_ID (status OK, the serial's length
 *     in {@code inLen}), an unknown type or a feature not negotiated (UNSUPP),
 *     a validation failure — unaligned, outside the disk, a write to a
 *     read-only disk, a bad discard segment (IOERR or UNSUPP, as QEMU answers
 *     each) — and a zero-sector discard or write-zeroes (OK): the status is
 *     written without touching the disk;</li>
 * <li>{@link VirtioBlkReq.Kind#SUBMIT}: a read, write, flush, discard or
 *     write-zeroes with its byte offset, length, flags and guest buffers.</li>
 * </ul>
 * The parser reads guest memory and never writes it; it holds only the
 * device's fixed geometry, so queues on different threads share it.
 */
final class VirtioBlkRequestParser {
    /** Volatile: a resize ({@link #setCapacity}) comes from the main loop while IOThreads parse. */
    private volatile long capacitySectors;
    private final boolean readOnly;

    VirtioBlkRequestParser(long capacitySectors, boolean readOnly) {
        this.capacitySectors = capacitySectors;
        this.readOnly = readOnly;
    }

    /**
     * Parses {@code r.elem} into {@code r}. {@code features} are the
     * negotiated ones (DISCARD, WRITE_ZEROES); {@code writeback} is the
     * current cache mode (a write in writethrough mode carries FUA).
     * {@code r.qiov} must be empty (a pooled request comes back reset).
     */
    VirtioBlkReq.Kind parse(VirtioBlkReq r, long features, boolean writeback) {
        VirtQueueElement e = r.elem;
        if (e.writableBytes() < 1) {
            return guestError(r, "a request without a writable status byte");
        }
        if (e.readableBytes() < OUTHDR_SIZE) {
            return guestError(r, "a request header of " + e.readableBytes() + " bytes (" + OUTHDR_SIZE + " needed)");
        }
        readHeader(r);
        int last = e.segmentCount() - 1;
        r.statusAddr = e.hostAddress(last) + e.length(last) - 1;
        r.inLen = 1;
        r.flags = 0;
        switch (r.type) {
            case T_IN: {
                long bytes = e.writableBytes() - 1;
                if (!rangeOk(r.sector, bytes)) {
                    return answer(r, S_IOERR);
                }
                addWritable(r, bytes);
                r.inLen = (int) bytes + 1;
                return submit(r, r.sector * SECTOR, bytes);
            }
            case T_OUT: {
                long bytes = e.readableBytes() - OUTHDR_SIZE;
                if (readOnly || !rangeOk(r.sector, bytes)) {
                    return answer(r, S_IOERR);
                }
                addReadable(r, OUTHDR_SIZE, bytes);
                r.flags = writeback ? 0 : BlockFlags.FUA;
                return submit(r, r.sector * SECTOR, bytes);
            }
            case T_FLUSH:
                return submit(r, 0, 0);
            case T_GET_ID:
                r.inLen = (int) Math.min(SERIAL_BYTES, e.writableBytes() - 1) + 1;
                return answer(r, S_OK);
            case T_DISCARD:
            case T_WRITE_ZEROES:
                return discardOrZeroes(r, features);
            default:
                return answer(r, S_UNSUPP);
        }
    }

    /** {@code struct virtio_blk_outhdr}: type and sector, read in place when the first buffer holds all of it. */
    private static void readHeader(VirtioBlkReq r) {
        VirtQueueElement e = r.elem;
        if (e.length(0) >= OUTHDR_SIZE && !e.isWritable(0)) {
            long a = e.hostAddress(0);
            r.type = HostMemory.getIntLE(a);
            r.sector = HostMemory.getLongLE(a + 8);
        } else {
            byte[] h = r.scratch;
            e.copyFromReadable(0, h, 0, OUTHDR_SIZE);
            r.type = (int) le(h, 0, 4);
            r.sector = le(h, 8, 8);
        }
    }

    /** Little-endian {@code n} bytes of {@code b} at {@code off}. */
    private static long le(byte[] b, int off, int n) {
        long v = 0;
        for (int i = off + n - 1; i >= off; i--) {
            v = v << 8 | (b[i] & 0xff);
        }
        return v;
    }

    /** A resized disk: requests are checked against the new size from now on. */
    void setCapacity(long sectors) {
        capacitySectors = sectors;
    }

    /** 512-byte multiple, inside the disk; the sector is the guest's unsigned 64-bit value. */
    private boolean rangeOk(long sector, long bytes) {
        if (bytes % SECTOR != 0 || sector < 0) {
            return false;
        }
        long n = bytes / SECTOR;
        return sector <= capacitySectors && n <= capacitySectors - sector;
    }

    private VirtioBlkReq.Kind discardOrZeroes(VirtioBlkReq r, long features) {
        VirtQueueElement e = r.elem;
        boolean zeroes = r.type == T_WRITE_ZEROES;
        if ((features & (zeroes ? F_WRITE_ZEROES : F_DISCARD)) == 0) {
            return answer(r, S_UNSUPP);
        }
        long seg = e.readableBytes() - OUTHDR_SIZE;
        if (seg != DWZ_SEGMENT_SIZE) {
            // one segment only (max_*_seg = 1): several are IOERR, a partial one UNSUPP, as QEMU answers
            return answer(r, seg == 0 || seg % DWZ_SEGMENT_SIZE != 0 ? S_UNSUPP : S_IOERR);
        }
        byte[] d = r.scratch;
        e.copyFromReadable(OUTHDR_SIZE, d, 0, DWZ_SEGMENT_SIZE);
        long sector = le(d, 0, 8);
        long sectors = le(d, 8, 4);
        int flags = (int) le(d, 12, 4);
        if ((flags & ~WZ_FLAG_UNMAP) != 0 || (!zeroes && flags != 0)) {
            return answer(r, S_UNSUPP);
        }
        if (readOnly || sectors > MAX_DISCARD_SECTORS || !rangeOk(sector, sectors * SECTOR)) {
            return answer(r, S_IOERR);
        }
        if (sectors == 0) {
            // Nothing to do, and done: QEMU's block layer completes a zero-length discard or write-zeroes at
            // once, while a driver may refuse one (fallocate(2) fails a zero length with EINVAL).
            return answer(r, S_OK);
        }
        r.flags = zeroes && (flags & WZ_FLAG_UNMAP) != 0 ? BlockFlags.MAY_UNMAP : 0;
        return submit(r, sector * SECTOR, sectors * SECTOR);
    }

    /** The data buffers of a read: the writable segments, up to the status byte. */
    private static void addWritable(VirtioBlkReq r, long bytes) {
        VirtQueueElement e = r.elem;
        long left = bytes;
        for (int i = e.readableCount(); i < e.segmentCount() && left > 0; i++) {
            int n = (int) Math.min(left, e.length(i));
            r.qiov.add(e.hostAddress(i), n);
            left -= n;
        }
    }

    /** The data buffers of a write: the readable segments after the header. */
    private static void addReadable(VirtioBlkReq r, long skip, long bytes) {
        VirtQueueElement e = r.elem;
        long left = bytes;
        for (int i = 0; i < e.readableCount() && left > 0; i++) {
            long len = e.length(i);
            if (skip >= len) {
                skip -= len;
                continue;
            }
            int n = (int) Math.min(left, len - skip);
            r.qiov.add(e.hostAddress(i) + skip, n);
            left -= n;
            skip = 0;
        }
    }

    private static VirtioBlkReq.Kind submit(VirtioBlkReq r, long offset, long bytes) {
        r.offset = offset;
        r.bytes = bytes;
        return r.kind = VirtioBlkReq.Kind.SUBMIT;
    }

    private static VirtioBlkReq.Kind answer(VirtioBlkReq r, int status) {
        r.status = status;
        return r.kind = VirtioBlkReq.Kind.ANSWER;
    }

    private static VirtioBlkReq.Kind guestError(VirtioBlkReq r, String why) {
        r.error = why;
        return r.kind = VirtioBlkReq.Kind.GUEST_ERROR;
    }
}
