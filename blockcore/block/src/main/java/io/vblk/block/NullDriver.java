package io.vblk.block;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioTimer;

import java.util.ArrayDeque;

/**
 * The {@code null} driver: reads complete at once (zero-filled unless told
 * not to), writes are discarded. With a latency, each request completes on
 * a timer of the home context instead (QEMU's {@code null-co} with
 * {@code latency-ns}). Used by benchmarks: the request path allocates nothing.
 */
public final class NullDriver extends BlockDriver {
    private final long size;
    private final boolean readZeroes;
    private final long latencyNs;
    private final ArrayDeque<Delayed> delayed = new ArrayDeque<>();

    /** Options of a null node. */
    public record Options(long size, boolean readZeroes, long latencyNs) {
        public Options {
            if (size < 0) {
                throw new IllegalArgumentException("null node size must be >= 0, got " + size);
            }
            if (latencyNs < 0) {
                throw new IllegalArgumentException("latency must be >= 0 ns, got " + latencyNs);
            }
        }

        public static Options of(long size) {
            return new Options(size, true, 0);
        }
    }

    NullDriver(Options o) {
        this.size = o.size();
        this.readZeroes = o.readZeroes();
        this.latencyNs = o.latencyNs();
    }

    @Override
    public String formatName() {
        return "null";
    }

    @Override
    public long length() {
        return size;
    }

    @Override
    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        if (readZeroes) {
            qiov.fill(0, bytes, (byte) 0);
        }
        done(cb);
    }

    @Override
    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        done(cb);
    }

    @Override
    public void flush(BlockCompletion cb) {
        done(cb);
    }

    @Override
    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        done(cb);
    }

    @Override
    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        done(cb);
    }

    @Override
    public BlockStatus blockStatus(long offset, long bytes) {
        return readZeroes ? BlockStatus.zero(bytes) : BlockStatus.data(bytes);
    }

    private void done(BlockCompletion cb) {
        if (latencyNs == 0) {
            cb.complete(0);
            return;
        }
        Delayed d = delayed.pollFirst();
        if (d == null) {
            d = new Delayed(node().context());
        }
        d.cb = cb;
        d.timer.modInNs(latencyNs);
    }

    @Override
    public void detachAioContext(AioContext ctx) {
        delayed.clear(); // drained: none armed; timers belong to the old context
    }

    @Override
    public String describe() {
        return "null size=" + size + (latencyNs > 0 ? " latency=" + latencyNs + "ns" : "");
    }

    /** A request waiting out the latency: pooled, with its own timer. */
    private final class Delayed {
        final AioTimer timer;
        BlockCompletion cb;

        Delayed(AioContext ctx) {
            timer = ctx.timerNew("null-latency", this::fire);
        }

        private void fire() {
            BlockCompletion c = cb;
            cb = null;
            delayed.addFirst(this);
            c.complete(0);
        }
    }
}
