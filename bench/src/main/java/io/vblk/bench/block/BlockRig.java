package io.vblk.bench.block;

import io.vblk.bench.aio.InContextRunner;
import io.vblk.aio.AioContext;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;
import io.vblk.block.NullDriver;

import com.sun.jna.Memory;

import java.nio.file.Path;
import java.time.Duration;
import java.util.function.Function;

/**
 * A machine with one disk for the block-layer benchmarks: a main loop, a
 * {@link BlockLayer}, one {@link IOThread} and a {@link BlockBackend} whose
 * node has been moved into that IOThread (as a virtio-blk device with
 * {@code iothread=} has it), and a way to run a measurement loop inside the
 * IOThread, the only thread allowed to issue requests to the node.
 *
 * <p>{@link #run(Runnable)} is the batching of {@link InContextRunner}:
 * it schedules a BH made once into the IOThread and parks until the BH has
 * run the body, which performs a whole JMH invocation's worth of requests.
 * The BH releases its hold on the context lock while the body runs, so each
 * poll the body makes takes the lock afresh, as an event-loop iteration does.
 * The hand-off costs tens of microseconds per invocation, well under 0.01 µs
 * per request at the batch sizes used here. Nothing is allocated per batch.
 */
final class BlockRig implements AutoCloseable {
    /** Size of one request. */
    static final int REQ = 4096;

    private final MainLoop loop;
    private final BlockLayer layer;
    final AioContext ctx;
    final BlockBackend blk;
    private final InContextRunner runner;

    private BlockRig(long pollMaxNs, Path image, long nullSize) {
        this(pollMaxNs, l -> image == null
                ? l.openNull("disk", NullDriver.Options.of(nullSize))
                : l.openFile("disk", image, true));
    }

    private BlockRig(long pollMaxNs, Function<BlockLayer, BlockNode> open) {
        loop = new MainLoop();
        layer = new BlockLayer(loop);
        IOThread io = pollMaxNs == AioContext.DEFAULT_POLL_MAX_NS
                ? loop.newIOThread("bench-io") // the IOThread default: adaptive polling on
                : loop.newIOThread("bench-io", pollMaxNs);
        ctx = io.context();
        blk = watchdog().call("open the disk", () -> {
            BlockNode n = open.apply(layer);
            BlockBackend b = layer.newBackend("blk0");
            b.attach(n);
            n.unref(); // the backend holds it now
            b.setAioContext(ctx);
            return b;
        });
        runner = new InContextRunner(ctx, "bench-block-batch");
    }

    /** A null node of {@code size} bytes (zero-filling reads, no latency) in an IOThread with {@code poll-max-ns} given. */
    static BlockRig nullDisk(long size, long pollMaxNs) {
        return new BlockRig(pollMaxNs, null, size);
    }

    /** A read-only {@code file} node over {@code image} in an IOThread with {@code poll-max-ns} given. */
    static BlockRig fileDisk(Path image, long pollMaxNs) {
        return new BlockRig(pollMaxNs, image, 0);
    }

    /**
     * A writable node opened by its protocol filename (e.g. {@code rbd:pool/image:conf=FILE}: the
     * protocol registered for the prefix opens it) in an IOThread with {@code poll-max-ns} given.
     */
    static BlockRig protocolDisk(String filename, long pollMaxNs) {
        return new BlockRig(pollMaxNs, l -> l.openProtocol("disk", filename, false));
    }

    /** A native buffer of {@link #REQ} bytes and a one-segment I/O vector over it, for a request slot. */
    static IoVec buffer(Memory[] keep, int i) {
        keep[i] = new Memory(REQ);
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(keep[i]), REQ);
        return v;
    }

    /** Runs {@code body} once in the IOThread and waits for it. */
    void run(Runnable b) {
        runner.run(b);
    }

    private Watchdog watchdog() {
        return loop.watchdog(Duration.ofSeconds(120)); // an rbd open or close on a loaded cluster takes seconds
    }

    @Override
    public void close() {
        try {
            watchdog().run("close the disk", () -> {
                blk.setAioContext(loop.context());
                layer.removeBackend(blk);
            });
        } finally {
            layer.close();
            loop.close();
        }
    }
}
