package io.vblk.virtio.blk;

import static io.vblk.virtio.blk.VirtioBlkAbi.*;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vblk.aio.Errno;

import org.junit.jupiter.api.Test;

/** Each row of the block-error table, for each request type that reaches the backend. */
class BlockErrorStatusTest {
    private static final int[] TYPES = {T_IN, T_OUT, T_FLUSH, T_DISCARD, T_WRITE_ZEROES};

    @Test
    void successIsOk() {
        for (int t : TYPES) {
            assertEquals(S_OK, BlockErrorStatus.status(t, 0), "type " + t);
            assertEquals(S_OK, BlockErrorStatus.status(t, 4096), "a byte count is success, type " + t);
        }
    }

    @Test
    void notSupportedIsUnsupportedForDiscardAndWriteZeroes() {
        assertEquals(S_UNSUPP, BlockErrorStatus.status(T_DISCARD, -Errno.ENOTSUP));
        assertEquals(S_UNSUPP, BlockErrorStatus.status(T_WRITE_ZEROES, -Errno.ENOTSUP));
    }

    @Test
    void notSupportedIsAnIoErrorForReadWriteAndFlush() {
        assertEquals(S_IOERR, BlockErrorStatus.status(T_IN, -Errno.ENOTSUP));
        assertEquals(S_IOERR, BlockErrorStatus.status(T_OUT, -Errno.ENOTSUP));
        assertEquals(S_IOERR, BlockErrorStatus.status(T_FLUSH, -Errno.ENOTSUP));
    }

    @Test
    void everyOtherErrnoIsAnIoError() {
        int[] errnos = {Errno.EIO, Errno.ENOSPC, Errno.EROFS, Errno.EINVAL, Errno.ECANCELED, Errno.ENOMEDIUM,
            Errno.EPERM, Errno.ENOMEM, Errno.EFBIG};
        for (int t : TYPES) {
            for (int e : errnos) {
                assertEquals(S_IOERR, BlockErrorStatus.status(t, -e), "type " + t + " " + Errno.name(e));
            }
        }
    }
}
