package io.vblk.block;

/**
 * The {@code raw} format over a {@link ChildRole#FILE} child, optionally a
 * window (offset, size) of it: QEMU's block/raw-format.c. Requests pass
 * through with the offset shifted; the node layer accounts both levels.
 */
public final class RawDriver extends BlockDriver {
    private final long windowOffset;
    private final long windowSize; // -1: up to the end of the child

    RawDriver(long windowOffset, long windowSize) {
        this.windowOffset = windowOffset;
        this.windowSize = windowSize;
    }

    private BlockNode file() {
        return node().child(ChildRole.FILE);
    }

    @Override
    public String formatName() {
        return "raw";
    }

    @Override
    public long length() {
        if (windowSize >= 0) {
            return windowSize;
        }
        return Math.max(0, file().length() - windowOffset);
    }

    @Override
    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        BlockNode f = file();
        f.debugEvent(BlkDebugInjectError.READ_AIO); // raw_co_preadv's BLKDBG_EVENT
        f.preadv(windowOffset + offset, bytes, qiov, flags, cb);
    }

    @Override
    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        BlockNode f = file();
        f.debugEvent(BlkDebugInjectError.WRITE_AIO); // raw_co_pwritev's BLKDBG_EVENT
        f.pwritev(windowOffset + offset, bytes, qiov, flags, cb);
    }

    @Override
    public void flush(BlockCompletion cb) {
        file().flush(cb);
    }

    @Override
    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        file().pdiscard(windowOffset + offset, bytes, cb);
    }

    @Override
    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        file().pwriteZeroes(windowOffset + offset, bytes, flags, cb);
    }

    @Override
    public BlockStatus blockStatus(long offset, long bytes) {
        return file().blockStatus(windowOffset + offset, bytes);
    }

    /**
     * QEMU's {@code raw_co_truncate}: a window with a fixed size cannot be
     * resized; otherwise the file child is set to the window's offset plus
     * the new length.
     */
    @Override
    public int truncate(long newLength) {
        if (windowSize >= 0) {
            throw new BlockException("Cannot resize fixed-size raw disks");
        }
        if (Long.MAX_VALUE - newLength < windowOffset) {
            throw new BlockException("Disk size too large for the chosen offset");
        }
        file().truncate(windowOffset + newLength);
        return 0;
    }

    @Override
    public String describe() {
        return "raw" + (windowOffset != 0 || windowSize >= 0 ? " window=" + windowOffset + "+" + windowSize : "");
    }
}
