package io.vblk.block.qcow2;

import io.vblk.block.BlockCompletion;

/**
 * A guest flush: QEMU's {@code qcow2_co_flush_to_os} followed by the flush
 * of the file. Under the metadata lock the {@link Checkpoint} writes every
 * dirty table in crash-consistent order and ends with a flush, so every
 * write completed before the flush began is durable when it completes.
 */
final class FlushRequest extends Qcow2Request {
    private static final int LOCKED = 0;
    private static final int DONE = 1;
    private static final int START = 2;

    FlushRequest(Qcow2Driver d) {
        super(d);
    }

    void start(BlockCompletion cb) {
        begin(cb, START);
    }

    @Override
    void step() {
        switch (state) {
            case START:
                lock(LOCKED);
                return;
            case LOCKED:
                state = DONE;
                d.checkpoint().run(true, this);
                return;
            default:
                unlock();
                finish(ret);
        }
    }

    @Override
    void recycle() {
        d.recycle(this);
    }

    @Override
    String traceName() {
        return "flush";
    }
}
