package io.vblk.block.qcow2;

import io.vblk.aio.Errno;
import io.vblk.block.BlkDebugInjectError;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Reads guest data from wherever one kind of mapping keeps it: the host
 * cluster, the backing file (up to its length, zeroes past it), zeroes, or a
 * compressed cluster (read, then inflated on the thread pool). It is the
 * data half of QEMU's {@code qcow2_co_preadv_task} and the read half of
 * copy-on-write ({@code do_perform_cow_read}); both the read path and the
 * COW of the write path use it. One per request, reused.
 */
final class ClusterReader implements BlockCompletion {
    private static final Logger LOG = LoggerFactory.getLogger(ClusterReader.class);

    private final Qcow2Driver d;
    private final IoVec slice = new IoVec(4);
    private final IoVec cin = new IoVec(1);
    private BlockCompletion cb;
    private boolean inflating;
    private IoVec dst;
    private long dstOff;
    private long len;
    private int inCluster;
    private long entry;
    private BufferPool.Buffer cbuf;
    private BufferPool.Buffer obuf;
    private Decompressor job;

    ClusterReader(Qcow2Driver d) {
        this.d = d;
    }

    /**
     * Reads {@code len} bytes of guest offset {@code guest}, mapped by L2
     * entry {@code e}, into {@code dst} at {@code dstOff}; completes with 0 or
     * -errno (synchronously for zeroes). A normal run may span contiguous
     * clusters; a compressed read stays within its cluster.
     */
    void read(long e, long guest, long len, IoVec dst, long dstOff, BlockCompletion cb) {
        Layout g = d.layout();
        switch (L2Entry.kind(e)) {
            case L2Entry.ZERO_PLAIN:
            case L2Entry.ZERO_ALLOC:
                dst.fill(dstOff, len, (byte) 0);
                cb.complete(0);
                return;
            case L2Entry.UNALLOCATED: {
                BlockNode b = d.backing();
                long blen = b == null ? 0 : b.length();
                long n = Math.max(0, Math.min(len, blen - guest));
                if (n < len) {
                    dst.fill(dstOff + n, len - n, (byte) 0);
                }
                if (n == 0) {
                    cb.complete(0);
                    return;
                }
                dst.sliceInto(slice, dstOff, n);
                b.preadv(guest, n, slice, 0, cb);
                return;
            }
            case L2Entry.NORMAL:
                dst.sliceInto(slice, dstOff, len);
                d.file().debugEvent(BlkDebugInjectError.READ_AIO); // qcow2's data read, as QEMU raises it
                d.file().preadv(L2Entry.hostOffset(e) + (guest & g.clusterMask), len, slice, 0, cb);
                return;
            default:
                readCompressed(e, guest, len, dst, dstOff, cb);
        }
    }

    private void readCompressed(long e, long guest, long len, IoVec dst, long dstOff, BlockCompletion cb) {
        Layout g = d.layout();
        int csize = g.compressedBytes(e);
        cbuf = d.compressedBuffers().take();
        if (csize <= 0 || csize > cbuf.mem.size()) {
            d.compressedBuffers().give(cbuf);
            cbuf = null;
            LOG.error("qcow2 image '{}': compressed cluster descriptor 0x{} claims {} bytes (corrupt image)", d.image(),
                    Long.toHexString(e), csize);
            cb.complete(-Errno.EIO);
            return;
        }
        obuf = d.clusterBuffers().take();
        this.entry = e;
        this.dst = dst;
        this.dstOff = dstOff;
        this.len = len;
        this.inCluster = (int) (guest & g.clusterMask);
        this.cb = cb;
        inflating = false;
        cin.reset();
        cin.add(cbuf.address, csize);
        d.file().preadv(g.compressedOffset(e), csize, cin, 0, this);
    }

    @Override
    public void complete(int ret) {
        if (ret >= 0 && !inflating) {
            inflating = true;
            job = d.takeDecompressor();
            cbuf.view.clear().limit(cin.length(0));
            obuf.view.clear().limit(d.layout().clusterSize);
            job.start(d.threadPool(), d.context(), cbuf.view, obuf.view, this);
            return;
        }
        if (inflating) {
            d.giveDecompressor(job);
            job = null;
            if (ret < 0) {
                LOG.error("qcow2 image '{}': compressed cluster 0x{} does not inflate to a full cluster (corrupt image)",
                        d.image(), Long.toHexString(entry));
                ret = -Errno.EIO;
            } else {
                dst.copyFrom(obuf.address + inCluster, dstOff, len);
            }
        }
        d.compressedBuffers().give(cbuf);
        d.clusterBuffers().give(obuf);
        cbuf = null;
        obuf = null;
        dst = null;
        BlockCompletion c = cb;
        cb = null;
        c.complete(ret);
    }
}
