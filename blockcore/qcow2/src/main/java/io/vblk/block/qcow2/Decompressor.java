package io.vblk.block.qcow2;

import io.vblk.aio.AioContext;
import io.vblk.aio.Errno;
import io.vblk.aio.ThreadPool;
import io.vblk.aio.ThreadPoolJob;
import io.vblk.block.BlockCompletion;

import java.nio.ByteBuffer;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Inflates one compressed cluster on a worker thread: QEMU's
 * {@code qcow2_co_decompress} with {@code qcow2_zlib_decompress}
 * (block/qcow2-threads.c). The data is a raw deflate stream (no zlib header,
 * QEMU's window bits -12), so the {@link Inflater} runs with
 * {@code nowrap = true}; decompression must fill the whole cluster, as QEMU
 * requires. Pooled per image so each job reuses its inflater.
 */
final class Decompressor extends ThreadPoolJob {
    private final Inflater inflater = new Inflater(true);
    private ByteBuffer in;
    private ByteBuffer out;
    private BlockCompletion cb;

    /** Inflates {@code in} (position..limit) into {@code out} (position..limit) and completes {@code cb} in {@code ctx}. */
    void start(ThreadPool pool, AioContext ctx, ByteBuffer in, ByteBuffer out, BlockCompletion cb) {
        this.in = in;
        this.out = out;
        this.cb = cb;
        pool.submit(ctx, this);
    }

    @Override
    protected int work() {
        inflater.reset();
        inflater.setInput(in);
        try {
            while (out.hasRemaining()) {
                int n = inflater.inflate(out);
                if (n == 0 && (inflater.finished() || inflater.needsInput() || inflater.needsDictionary())) {
                    break;
                }
            }
        } catch (DataFormatException e) {
            return -Errno.EIO;
        }
        return out.hasRemaining() ? -Errno.EIO : 0;
    }

    @Override
    protected void complete(int ret) {
        BlockCompletion c = cb;
        cb = null;
        in = null;
        out = null;
        c.complete(ret);
    }

    /** Frees the inflater's native state. */
    void end() {
        inflater.end();
    }
}
