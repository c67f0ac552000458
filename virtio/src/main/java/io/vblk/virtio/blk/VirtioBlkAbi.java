package io.vblk.virtio.blk;

/**
 * The virtio-blk ABI (virtio 1.2 section 5.2), defined once for everything
 * that speaks it: the device, the vhost-user front-end and the test kit's
 * driver. QEMU takes these from {@code standard-headers/linux/virtio_blk.h}.
 */
public final class VirtioBlkAbi {
    private VirtioBlkAbi() {
    }

    // feature bits (VIRTIO_BLK_F_*)
    public static final long F_SIZE_MAX = 1L << 1;
    public static final long F_SEG_MAX = 1L << 2;
    public static final long F_GEOMETRY = 1L << 4; // not offered by this device; a vhost-user back-end may
    public static final long F_RO = 1L << 5;
    public static final long F_BLK_SIZE = 1L << 6;
    public static final long F_FLUSH = 1L << 9;
    public static final long F_TOPOLOGY = 1L << 10;
    public static final long F_CONFIG_WCE = 1L << 11;
    public static final long F_MQ = 1L << 12;
    public static final long F_DISCARD = 1L << 13;
    public static final long F_WRITE_ZEROES = 1L << 14;

    // request types (VIRTIO_BLK_T_*)
    public static final int T_IN = 0;
    public static final int T_OUT = 1;
    public static final int T_FLUSH = 4;
    public static final int T_GET_ID = 8;
    public static final int T_DISCARD = 11;
    public static final int T_WRITE_ZEROES = 13;

    // status byte values (VIRTIO_BLK_S_*)
    public static final int S_OK = 0;
    public static final int S_IOERR = 1;
    public static final int S_UNSUPP = 2;

    /** {@code struct virtio_blk_outhdr}: type (le32), ioprio (le32), sector (le64). */
    public static final int OUTHDR_SIZE = 16;
    /** {@code struct virtio_blk_discard_write_zeroes}: sector (le64), num_sectors (le32), flags (le32). */
    public static final int DWZ_SEGMENT_SIZE = 16;
    /** VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP. */
    public static final int WZ_FLAG_UNMAP = 1;

    public static final int SECTOR = 512;
    /** Bytes of a GET_ID answer (VIRTIO_BLK_ID_BYTES). */
    public static final int SERIAL_BYTES = 20;

    // configuration space layout (struct virtio_blk_config), byte offsets
    public static final int CFG_CAPACITY = 0;
    public static final int CFG_SIZE_MAX = 8;
    public static final int CFG_SEG_MAX = 12;
    public static final int CFG_GEOMETRY = 16;
    public static final int CFG_BLK_SIZE = 20;
    public static final int CFG_PHYSICAL_BLOCK_EXP = 24;
    public static final int CFG_ALIGNMENT_OFFSET = 25;
    public static final int CFG_MIN_IO_SIZE = 26;
    public static final int CFG_OPT_IO_SIZE = 28;
    public static final int CFG_WRITEBACK = 32;
    public static final int CFG_NUM_QUEUES = 34;
    public static final int CFG_MAX_DISCARD_SECTORS = 36;
    public static final int CFG_MAX_DISCARD_SEG = 40;
    public static final int CFG_DISCARD_SECTOR_ALIGNMENT = 44;
    public static final int CFG_MAX_WRITE_ZEROES_SECTORS = 48;
    public static final int CFG_MAX_WRITE_ZEROES_SEG = 52;
    public static final int CFG_WRITE_ZEROES_MAY_UNMAP = 56;
    /** Bytes of the configuration space this device exposes (up to write_zeroes_may_unmap and its padding). */
    public static final int CONFIG_SIZE = 60;

    // this device's limits, advertised in its configuration space
    /** Bytes per segment the device accepts (config {@code size_max}). */
    public static final int SIZE_MAX = 1 << 20;
    /** Sectors one DISCARD or WRITE_ZEROES segment may cover. */
    public static final int MAX_DISCARD_SECTORS = (1 << 22) - 1;
}
