package io.vblk.block.qcow2;

import io.vblk.aio.Errno;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.block.GrowableDriver;
import io.vblk.block.IoVec;

import java.util.ArrayList;
import java.util.List;

/**
 * A test filter between a format node and its file: records every request
 * that reaches the file, in order, and can fail writes in a host range. It
 * passes growth through (reads and writes past the end), as a format's file
 * must allow.
 */
final class RecordingFilter extends BlockDriver implements GrowableDriver {
    record Op(char kind, long offset, long bytes) {
        @Override
        public String toString() {
            return kind == 'F' ? "flush" : kind + "@0x" + Long.toHexString(offset) + "+" + bytes;
        }
    }

    final List<Op> ops = new ArrayList<>();
    long failWritesFrom = Long.MAX_VALUE;
    long failWritesTo = Long.MAX_VALUE;
    boolean failOnce;
    int failures;

    private BlockNode child() {
        return node().child(ChildRole.FILTERED);
    }

    @Override
    public String formatName() {
        return "recorder";
    }

    @Override
    public long length() {
        return child().length();
    }

    @Override
    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        child().preadv(offset, bytes, qiov, flags, cb);
    }

    @Override
    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        ops.add(new Op('W', offset, bytes));
        if (offset < failWritesTo && offset + bytes > failWritesFrom) {
            failures++;
            if (failOnce) {
                failWritesFrom = failWritesTo = Long.MAX_VALUE;
            }
            cb.complete(-Errno.EIO);
            return;
        }
        child().pwritev(offset, bytes, qiov, flags, cb);
    }

    @Override
    public void flush(BlockCompletion cb) {
        ops.add(new Op('F', 0, 0));
        child().flush(cb);
    }

    @Override
    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        ops.add(new Op('D', offset, bytes));
        child().pdiscard(offset, bytes, cb);
    }

    @Override
    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        ops.add(new Op('Z', offset, bytes));
        child().pwriteZeroes(offset, bytes, flags, cb);
    }
}
