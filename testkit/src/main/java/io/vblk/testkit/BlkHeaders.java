package io.vblk.testkit;

import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * The device-readable structures of a virtio-blk request as a driver fills
 * them (virtio 1.2 section 5.2.6, {@code struct virtio_blk_outhdr} and
 * {@code struct virtio_blk_discard_write_zeroes}), laid out by
 * {@link VirtioBlkAbi}; Linux's {@code virtblk_setup_cmd} and
 * {@code virtblk_setup_discard_write_zeroes_erase}.
 */
public final class BlkHeaders {
    /** What a driver pre-fills the status byte with, so a request the device never answered shows. */
    public static final int STATUS_UNSET = 0xff;

    private BlkHeaders() {
    }

    /** A request header: {@code type}, ioprio 0, {@code sector}. */
    public static byte[] outhdr(int type, long sector) {
        byte[] h = new byte[VirtioBlkAbi.OUTHDR_SIZE];
        Bytes.putLE(h, 0, type, 4);
        Bytes.putLE(h, 8, sector, 8);
        return h;
    }

    /** Writes a request header at {@code gpa}. */
    public static void writeOuthdr(GuestMemory mem, long gpa, int type, long sector) {
        mem.write(gpa, outhdr(type, sector));
    }

    /** One DISCARD / WRITE_ZEROES segment: {@code sector}, {@code numSectors}, {@code flags}. */
    public static byte[] dwzSegment(long sector, long numSectors, int flags) {
        byte[] s = new byte[VirtioBlkAbi.DWZ_SEGMENT_SIZE];
        Bytes.putLE(s, 0, sector, 8);
        Bytes.putLE(s, 8, numSectors, 4);
        Bytes.putLE(s, 12, flags, 4);
        return s;
    }
}
