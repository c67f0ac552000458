package io.vblk.block.qcow2;

import com.sun.jna.Memory;

import io.vblk.aio.Errno;
import io.vblk.aio.ThreadPool;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import java.nio.file.Path;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Opening a qcow2 image: QEMU's {@code qcow2_do_open} (read and check the
 * header, refuse unsupported features, load the L1 and refcount tables, size
 * the caches) and the re-read of the tables on activation after migration.
 * Main loop, synchronous reads of the file node.
 */
final class Qcow2Open {
    /** Log lines keep the driver's logger name. */
    private static final Logger LOG = LoggerFactory.getLogger(Qcow2Driver.class);

    private Qcow2Open() {
    }

    /**
     * Opens the image on {@code file}: reads and checks the header, loads the
     * L1 and refcount tables. Main loop, synchronous reads (QEMU's
     * {@code qcow2_do_open}).
     */
    static Qcow2Driver open(BlockNode file, boolean readOnly, ThreadPool pool, int l2CacheTables, int refblockCache) {
        Path path = file.driver().imagePath();
        String image = path != null ? path.toString() : file.name();
        long flen = file.length();
        byte[] head = readSync(file, 0, (int) Math.min(flen, Qcow2Header.PROBE_BYTES), image);
        int bits = Qcow2Header.clusterBits(head, head.length, image);
        byte[] c0 = readSync(file, 0, (int) Math.min(flen, 1L << bits), image);
        Qcow2Header h = Qcow2Header.parse(c0, c0.length, flen, image);
        String unsupported = h.unsupportedForReading();
        if (unsupported != null) {
            throw Qcow2Header.unsupported(image, unsupported);
        }
        String refusal = h.unsupportedForWriting();
        if (!readOnly && refusal != null) {
            throw new BlockException("qcow2 image '" + image + "' cannot be opened read-write: " + refusal
                    + "; open it read-only");
        }
        NativeTable l1 = loadTable(file, h.l1TableOffset, h.l1Size, (long) h.l1Size * 8, image, "L1 table");
        long rtBytes = (long) h.refcountTableClusters << bits;
        NativeTable rt = loadTable(file, h.refcountTableOffset, (int) (rtBytes / 8), rtBytes, image, "refcount table");
        int cs = 1 << bits;
        int l2Tables = l2CacheTables > 0 ? l2CacheTables
                : (int) Math.max(4, Math.min(Math.max(1, h.l1Size), Qcow2Format.DEFAULT_L2_CACHE_BYTES / cs));
        int rb = Math.max(4, refblockCache > 0 ? refblockCache : l2Tables / 4); // an allocation pins up to 3
        LOG.debug("qcow2 image '{}' opened: {} (L2 cache {} tables, refcount cache {} blocks)", image, h, l2Tables, rb);
        return new Qcow2Driver(h, image, path, pool, l1, rt, l2Tables, rb);
    }

    static byte[] readSync(BlockNode file, long offset, int len, String image) {
        byte[] out = new byte[len];
        if (len == 0) {
            return out;
        }
        Memory m = new Memory(len);
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), len);
        int ret = file.preadSync(offset, len, v);
        if (ret < 0) {
            throw new BlockException("qcow2 image '" + image + "': reading the header failed: errno " + -ret);
        }
        m.read(0, out, 0, len);
        return out;
    }

    static NativeTable loadTable(BlockNode file, long offset, int entries, long bytes, String image, String what) {
        NativeTable t = new NativeTable(offset, entries, bytes);
        if (bytes > 0) {
            int ret = file.preadSync(offset, bytes, t.wholeIoVec());
            if (ret < 0) {
                throw new BlockException("qcow2 image '" + image + "': reading the " + what + " failed: errno " + -ret);
            }
        }
        return t;
    }

    /**
     * Re-reads the L1 and refcount tables another process may have changed,
     * and drops the caches: the part of QEMU's
     * {@code qcow2_co_invalidate_cache} (which re-opens the image) vblk needs
     * after migration. 0 or -errno.
     */
    static int reload(Qcow2Driver d) {
        Layout g = d.layout();
        String image = d.image();
        Qcow2Header header = d.header();
        ClusterMap map = d.map();
        Refcounts refcounts = d.refcounts();
        BlockNode f = d.file();
        try {
            byte[] c0 = readSync(f, 0, (int) Math.min(f.length(), g.clusterSize), image);
            Qcow2Header h = Qcow2Header.parse(c0, c0.length, f.length(), image);
            if (h.clusterBits != header.clusterBits || h.size != header.size || h.l1Size != header.l1Size
                    || h.l1TableOffset != header.l1TableOffset) {
                LOG.error("qcow2 image '{}': the image changed shape while inactive; reopen it", image);
                return -Errno.EIO;
            }
            map.l2.invalidate();
            refcounts.blocks.invalidate();
            int ret = f.preadSync(map.l1.fileOffset, map.l1.bytes(), map.l1.wholeIoVec());
            if (ret < 0) {
                return ret;
            }
            long rtBytes = (long) h.refcountTableClusters << g.clusterBits;
            NativeTable rt = loadTable(f, h.refcountTableOffset, (int) (rtBytes / 8), rtBytes, image, "refcount table");
            refcounts.replaceTable(rt);
            header.refcountTableOffset = h.refcountTableOffset;
            header.refcountTableClusters = h.refcountTableClusters;
            return 0;
        } catch (BlockException e) {
            LOG.error("{}", e.getMessage());
            return -Errno.EIO;
        }
    }
}
