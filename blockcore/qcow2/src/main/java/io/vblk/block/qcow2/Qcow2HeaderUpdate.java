package io.vblk.block.qcow2;

import com.sun.jna.Memory;

import io.vblk.aio.Errno;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes to a qcow2 image's header after open: clearing the autoclear
 * feature bits before the first write, and rewriting cluster 0 to change the
 * backing file. QEMU's {@code qcow2_update_header} and its callers
 * {@code qcow2_change_backing_file} and the autoclear handling of
 * {@code qcow2_do_open}. Runs in the node's home context.
 */
final class Qcow2HeaderUpdate {
    /** Log lines keep the driver's logger name. */
    private static final Logger LOG = LoggerFactory.getLogger(Qcow2Driver.class);

    private final Qcow2Driver d;
    private final Qcow2Header header;
    private final String image;
    private boolean autoclearPending;

    Qcow2HeaderUpdate(Qcow2Driver d, Qcow2Header header, String image) {
        this.d = d;
        this.header = header;
        this.image = image;
        this.autoclearPending = header.autoclear != 0;
    }

    boolean autoclearPending() {
        return autoclearPending;
    }

    /**
     * Clears the autoclear feature bits before the first write, as the
     * specification requires of a writer that does not maintain them (the
     * bitmaps extension becomes inconsistent): header write, then flush.
     * Under the metadata lock.
     */
    void clearAutoclear(BlockCompletion cb) {
        Memory m = new Memory(8);
        m.clear();
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), 8);
        BlockNode f = d.file();
        f.pwritev(Qcow2Header.OFF_AUTOCLEAR, 8, v, 0, ret -> {
            if (ret < 0) {
                cb.complete(ret);
                return;
            }
            f.flush(r -> {
                if (r == 0) {
                    LOG.info("qcow2 image '{}': cleared autoclear features 0x{} before writing", image,
                            Long.toHexString(header.autoclear));
                    header.autoclear = 0;
                    autoclearPending = false;
                }
                m.clear(); // keeps the buffer reachable until the write completed
                cb.complete(r);
            });
        });
    }

    /**
     * Rewrites the backing file name and format in the image header, for a
     * stream or commit that changed the chain: QEMU's
     * {@code bdrv_change_backing_file} ({@code qcow2_change_backing_file},
     * which rewrites the header through {@code qcow2_update_header}). Cluster
     * 0 is rewritten whole — header, the backing format and feature name
     * extensions, the name — and flushed; other extensions are not kept, so
     * the autoclear bits that guarded them are cleared with it. {@code null}
     * removes the backing file. The node is drained and writable; runs in its
     * home context (or under its lock), waiting synchronously. Returns 0 or -errno.
     */
    int changeBackingFile(String backingFile, String backingFormat) {
        d.formatNode().checkOwned("change backing file");
        if (d.writeRefusal() != null || d.formatNode().isReadOnly()) {
            return -Errno.EROFS;
        }
        String oldFile = header.backingFile;
        String oldFormat = header.backingFormat;
        long oldAutoclear = header.autoclear;
        header.backingFile = backingFile;
        header.backingFormat = backingFile == null ? null : backingFormat;
        header.autoclear = 0;
        byte[] c0;
        try {
            c0 = header.encodeCluster0();
        } catch (BlockException e) {
            header.backingFile = oldFile;
            header.backingFormat = oldFormat;
            header.autoclear = oldAutoclear;
            LOG.error("{}", e.getMessage());
            return -Errno.EINVAL;
        }
        Memory m = new Memory(c0.length);
        m.write(0, c0, 0, c0.length);
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), c0.length);
        BlockNode f = d.file();
        int ret = f.pwriteSync(0, c0.length, v, 0);
        if (ret == 0) {
            ret = f.flushSync();
        }
        if (ret < 0) {
            header.backingFile = oldFile;
            header.backingFormat = oldFormat;
            header.autoclear = oldAutoclear;
            LOG.error("qcow2 image '{}': rewriting the header failed: errno {}", image, -ret);
            return ret;
        }
        updateBackingLocation(header, c0);
        autoclearPending = false;
        LOG.debug("qcow2 image '{}': backing file is now {} ({})", image, backingFile, backingFormat);
        return 0;
    }

    /** Re-reads where {@link Qcow2Header#encodeCluster0} put the backing file name. */
    private static void updateBackingLocation(Qcow2Header h, byte[] c0) {
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(c0);
        h.backingFileOffset = b.getLong(8);
        h.backingFileSize = b.getInt(16);
    }
}
