package io.vblk.firmware;

/**
 * SeaBIOS's virtio-blk driver (src/hw/virtio-blk.c): reset, negotiate
 * VERSION_1 (and BLK_SIZE, SEG_MAX, SIZE_MAX if offered), check the block
 * size is 512, set up queue 0 with at most 256 entries, DRIVER_OK; then one
 * request at a time — header, data, status byte pre-set to UNSUPP — kicked
 * and busy-polled on {@code used.idx} with a guest-side timeout.
 */
final class VirtioBlk {
    static final long F_SIZE_MAX = 1L << 1;
    static final long F_SEG_MAX = 1L << 2;
    static final long F_BLK_SIZE = 1L << 6;
    static final long F_VERSION_1 = 1L << 32;
    static final long F_ACCESS_PLATFORM = 1L << 33;
    static final int MAX_QUEUE = 256;
    static final int T_IN = 0;
    static final int S_OK = 0;
    static final int S_UNSUPP = 2;
    static final int SECTOR = 512;

    /** Where the firmware keeps its rings and request header in guest RAM (low memory, like a BIOS). */
    static final long RING_BASE = 0x20000;
    static final long HEADER = 0x1f000;
    static final long STATUS = 0x1f010;

    private final Platform p;
    private final VirtioPci vp;
    private Vring vq;
    private long notifyAddr;
    long sectors;
    long maxSectorsPerRequest = 64;

    VirtioBlk(Platform p, VirtioPci vp) {
        this.p = p;
        this.vp = vp;
    }

    String name() {
        return vp.dev.name();
    }

    /** Initialises the device; any failure resets it (SeaBIOS's {@code goto fail}). */
    void init(long resetTimeoutNs) throws FirmwareException {
        try {
            if (!vp.reset(resetTimeoutNs)) {
                throw fail("device did not finish its reset");
            }
            int status = VirtioPci.S_ACKNOWLEDGE | VirtioPci.S_DRIVER;
            vp.setStatus(status);
            long features = vp.deviceFeatures();
            if ((features & F_VERSION_1) == 0) {
                throw fail("modern device without the VERSION_1 feature");
            }
            long wanted = features & (F_VERSION_1 | F_ACCESS_PLATFORM | F_BLK_SIZE | F_SEG_MAX | F_SIZE_MAX);
            vp.setDriverFeatures(wanted);
            status |= VirtioPci.S_FEATURES_OK;
            vp.setStatus(status);
            if ((vp.status() & VirtioPci.S_FEATURES_OK) == 0) {
                throw fail("device did not accept the features");
            }
            sectors = vp.deviceConfig(0, 8);
            long blkSize = (wanted & F_BLK_SIZE) != 0 ? vp.deviceConfig(20, 4) & 0xffffffffL : SECTOR;
            if (blkSize != SECTOR) {
                throw fail("block size " + blkSize + " is unsupported");
            }
            if ((wanted & (F_SIZE_MAX | F_SEG_MAX)) == (F_SIZE_MAX | F_SEG_MAX)) {
                long sizeMax = vp.deviceConfig(8, 4) & 0xffffffffL;
                long segMax = vp.deviceConfig(12, 4) & 0xffffffffL;
                long m = sizeMax * segMax / SECTOR;
                if (m > 0) {
                    maxSectorsPerRequest = Math.min(m, 0xffff);
                }
            }
            vp.selectQueue(0);
            int size = vp.queueSize();
            if (size == 0) {
                throw fail("queue 0 is not available");
            }
            if (size > MAX_QUEUE) {
                size = MAX_QUEUE;
                vp.setQueueSize(size);
            }
            vq = new Vring(p, RING_BASE, size);
            vp.setQueueAddresses(vq.desc, vq.avail, vq.used);
            vp.enableQueue();
            notifyAddr = vp.notifyAddress();
            status |= VirtioPci.S_DRIVER_OK;
            vp.setStatus(status);
        } catch (FirmwareException e) {
            vp.setStatus(VirtioPci.S_FAILED);
            vp.setStatus(0);
            throw e;
        }
    }

    private FirmwareException fail(String why) {
        return new FirmwareException(BootVerdict.NO_BOOT_DEVICE, "virtio-blk " + name() + ": " + why);
    }

    /**
     * Reads {@code count} sectors at {@code lba} into guest RAM at {@code buf},
     * split by the device's maximum transfer; a request that does not complete
     * within {@code timeoutNs} is a hang.
     */
    void read(long lba, int count, long buf, long timeoutNs, String what) throws FirmwareException {
        while (count > 0) {
            int n = (int) Math.min(count, maxSectorsPerRequest);
            op(lba, n, buf, timeoutNs, what);
            lba += n;
            count -= n;
            buf += (long) n * SECTOR;
        }
    }

    private void op(long lba, int n, long buf, long timeoutNs, String what) throws FirmwareException {
        p.ramWrite32(HEADER, T_IN);
        p.ramWrite32(HEADER + 4, 0);
        p.ramWrite64(HEADER + 8, lba);
        p.ramWrite8(STATUS, S_UNSUPP);
        vq.add(new long[] {HEADER, buf, STATUS}, new int[] {16, n * SECTOR, 1}, new boolean[] {false, true, true}, 3);
        vq.publish();
        p.mmioWrite(notifyAddr, 2, 0);
        long start = p.nanoTime();
        while (!vq.moreUsed()) {
            if (p.nanoTime() - start > timeoutNs) {
                throw new FirmwareException(BootVerdict.HANG_AT_MBR_READ, "hang at " + what + ": virtio-blk " + name()
                        + " did not complete the read of sector " + lba + " within " + timeoutNs / 1_000_000
                        + " ms (used.idx=" + vq.usedIdx() + ", status byte=0x"
                        + Integer.toHexString(p.ramRead8(STATUS)) + ")");
            }
            p.delayMicros(5);
        }
        vq.reclaim();
        vp.readIsr(); // clear a stuck interrupt, as SeaBIOS does
        int status = p.ramRead8(STATUS);
        if (status != S_OK) {
            throw new FirmwareException(BootVerdict.READ_ERROR, "virtio-blk " + name() + ": read of sector " + lba
                    + " failed with status " + status);
        }
    }
}
