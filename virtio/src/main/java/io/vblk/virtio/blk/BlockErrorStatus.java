package io.vblk.virtio.blk;

import io.vblk.aio.Errno;

import static io.vblk.virtio.blk.VirtioBlkAbi.*;

/**
 * The one table from a block-layer completion (0 or a negative errno from
 * {@link io.vblk.aio.Errno}) to the virtio-blk status byte: QEMU's
 * {@code virtio_blk_rw_complete}/{@code virtio_blk_discard_write_zeroes_complete}
 * with {@code virtio_blk_handle_rw_error}'s REPORT branch.
 *
 * <pre>
 *   ret           request type                  status
 *   &gt;= 0          any                           S_OK
 *   -ENOTSUP      DISCARD, WRITE_ZEROES         S_UNSUPP  (the disk cannot do it; the guest may stop asking)
 *   -ENOTSUP      IN, OUT, FLUSH                S_IOERR
 *   other &lt; 0     any                           S_IOERR   (EIO, ENOSPC, EROFS, ECANCELED, ...)
 * </pre>
 *
 * The rerror/werror decision ({@link io.vblk.block.ErrorPolicy}: report,
 * ignore, stop, enospc) is taken before this table, by the
 * {@link io.vblk.block.BlockBackend}, as QEMU's {@code blk_get_error_action}:
 * a stopping error keeps the request in the backend (the device sees no
 * completion until resume), IGNORE completes it with 0; only a REPORTed error
 * reaches the device with a negative value.
 */
final class BlockErrorStatus {
    private BlockErrorStatus() {
    }

    /** The status byte for a request of {@code type} (VIRTIO_BLK_T_*) that completed with {@code ret}. */
    static int status(int type, int ret) {
        if (ret >= 0) {
            return S_OK;
        }
        if (ret == -Errno.ENOTSUP && (type == T_DISCARD || type == T_WRITE_ZEROES)) {
            return S_UNSUPP;
        }
        return S_IOERR;
    }
}
