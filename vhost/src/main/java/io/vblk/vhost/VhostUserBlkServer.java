package io.vblk.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioWait;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.NullDriver;
import io.vblk.dataplane.QueueMapping;
import io.vblk.dataplane.VirtioBlkDataplane;
import io.vblk.virtio.blk.VirtioBlk;
import io.vblk.virtio.blk.VirtioBlkConfig;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code vblk serve}: a disk exported as a vhost-user-blk back-end — QEMU's
 * vhost-user-blk export (block/export/vhost-user-blk-server.c, what
 * {@code qemu-storage-daemon --export type=vhost-user-blk} runs). It owns a
 * main loop, the IOThreads, the block graph and backend, and one
 * {@link VirtioBlk} with its {@link VirtioBlkDataplane} — the very classes
 * that serve the in-process virtio-pci disk — behind a
 * {@link VhostUserDevice} and a {@link VhostUserServer}.
 *
 * <p>Queues are dealt round-robin over the IOThreads, the backend living
 * with queue 0's (as the in-process dataplane does). After each front-end
 * disconnects the backend is flushed, so every write it acknowledged is on
 * the image.
 */
public final class VhostUserBlkServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserBlkServer.class);
    /** Largest ring a front-end may choose (QEMU's vhost-user-blk allows up to 1024). */
    public static final int MAX_QUEUE_SIZE = 1024;

    /** What to serve and how: the {@code vblk serve} options. */
    public record Options(Path socket, Path image, String format, boolean readOnly, long nullSize, int iothreads,
                          int numQueues, String serial, long pollMaxNs) {
        public Options {
            if (socket == null) {
                throw new IllegalArgumentException("a socket path is needed");
            }
            if (image == null && nullSize <= 0) {
                throw new IllegalArgumentException("an image or a null-device size is needed");
            }
            if (iothreads < 1 || iothreads > 64) {
                throw new IllegalArgumentException("IOThreads must be 1..64, got " + iothreads);
            }
            if (numQueues < 1 || numQueues > VirtioBlkConfig.MAX_QUEUES) {
                throw new IllegalArgumentException("queues must be 1.." + VirtioBlkConfig.MAX_QUEUES + ", got "
                        + numQueues);
            }
            if (pollMaxNs < 0) {
                throw new IllegalArgumentException("poll-max-ns must be >= 0");
            }
        }

        /** An image file, one IOThread, one queue. */
        public static Options image(Path socket, Path image, String format) {
            return new Options(socket, image, format, false, 0, 1, 1, null, AioContext.DEFAULT_POLL_MAX_NS);
        }

        /** A null device of {@code size} bytes (reads complete at once, writes are dropped). */
        public static Options nullDevice(Path socket, long size) {
            return new Options(socket, null, null, false, size, 1, 1, null, AioContext.DEFAULT_POLL_MAX_NS);
        }

        public Options withQueues(int n) {
            return new Options(socket, image, format, readOnly, nullSize, iothreads, n, serial, pollMaxNs);
        }

        public Options withIothreads(int n) {
            return new Options(socket, image, format, readOnly, nullSize, n, numQueues, serial, pollMaxNs);
        }

        public Options withReadOnly(boolean ro) {
            return new Options(socket, image, format, ro, nullSize, iothreads, numQueues, serial, pollMaxNs);
        }
    }

    /** Opens the node to export (tests put a blkdebug filter over the image this way). */
    @FunctionalInterface
    public interface NodeOpener {
        BlockNode open(BlockLayer layer, Options o);
    }

    /** The default: the image in its format (probed when not given), or a null device that does not zero reads. */
    public static final NodeOpener DEFAULT_OPENER = (layer, o) -> o.image() == null
            ? layer.openNull("disk", new NullDriver.Options(o.nullSize(), false, 0))
            : layer.openImage("disk", o.image(), o.format(), o.readOnly());

    private final Options options;
    private final MainLoop loop;
    private final BlockLayer layer;
    private final List<IOThread> iothreads = new ArrayList<>();
    private BlockBackend blk;
    private VirtioBlk dev;
    private VirtioBlkDataplane dataplane;
    private VhostUserDevice vdev;
    private VhostUserServer server;
    private AutoCloseable diagnostics;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();
    /** The test switch's hold ({@link #holdAfterTake}), or null: the device's observer is then untouched. */
    private volatile TakenRequestHold hold;

    private VhostUserBlkServer(Options o) {
        this.options = o;
        this.loop = new MainLoop("vblk-serve", new io.vblk.aio.LegacySwitches());
        this.layer = new BlockLayer(loop);
    }

    public static VhostUserBlkServer start(Options o) {
        return start(o, DEFAULT_OPENER, VhostUserEvents.NONE);
    }

    /** Opens the disk, builds the device and starts listening; errors name what failed. */
    public static VhostUserBlkServer start(Options o, NodeOpener opener, VhostUserEvents events) {
        VhostUserBlkServer s = new VhostUserBlkServer(o);
        try {
            s.loop.watchdog(Duration.ofSeconds(60)).run("vblk serve setup", () -> s.setup(opener));
            s.server = VhostUserServer.start(s.loop, o.socket(), s.vdev, s::flushAfterDisconnect, events);
            return s;
        } catch (RuntimeException e) {
            s.close();
            throw e;
        }
    }

    private void setup(NodeOpener opener) {
        for (int i = 0; i < options.iothreads(); i++) {
            iothreads.add(loop.newIOThread("io" + i, options.pollMaxNs()));
        }
        BlockNode node = opener.open(layer, options);
        blk = layer.newBackend("blk0");
        blk.attach(node);
        node.unref();
        blk.setReadOnly(options.readOnly());
        VirtioBlkConfig conf = new VirtioBlkConfig(options.numQueues(), MAX_QUEUE_SIZE,
                options.serial() != null ? options.serial() : "vblk-serve", true);
        dev = new VirtioBlk("vhost-user-blk", blk, conf, loop.context(), null);
        vdev = new VhostUserDevice(dev);
        dataplane = new VirtioBlkDataplane(dev, vdev, QueueMapping.roundRobin(iothreads, options.numQueues()), loop);
        vdev.setDataplane(dataplane);
        diagnostics = loop.addDiagnostics("vblk serve", this::describe);
        LOG.info("vblk serve: {} ({} bytes{}), {} queue(s) on {} IOThread(s)",
                options.image() == null ? "null device" : options.image(), blk.length(),
                blk.isReadOnly() ? ", read-only" : "", options.numQueues(), options.iothreads());
    }

    /** After a front-end left: everything it was told is written is on the image (QEMU flushes on export removal). */
    private void flushAfterDisconnect() {
        if (blk == null || blk.isReadOnly()) {
            return;
        }
        AtomicBoolean done = new AtomicBoolean();
        AtomicInteger ret = new AtomicInteger();
        AioContext bc = blk.context();
        Runnable issue = () -> blk.flush(r -> {
            ret.set(r);
            done.set(true);
            loop.aioWait().kick();
        });
        if (bc.inHomeThread()) {
            issue.run();
        } else {
            bc.bhScheduleOneshot("flush-after-disconnect", issue);
        }
        AioWait.pollWhile(loop.context(), () -> !done.get());
        if (ret.get() < 0) {
            LOG.error("vblk serve: flush after disconnect failed: errno {}", -ret.get());
        }
    }

    /**
     * The image now has {@code newSectors} sectors (the daemon's QMP
     * {@code block_resize} grew or shrank it, or it noticed a grown file): the
     * device's capacity follows and the connected front-end is told with
     * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG on the back-end channel (when it
     * negotiated BACKEND_REQ and CONFIG); it re-reads the config space and the
     * guest sees the new size. A front-end that connects later reads it with
     * GET_CONFIG. Any thread; returns once the device uses the new capacity.
     *
     * @throws IllegalArgumentException if the backend is shorter than {@code newSectors}
     */
    public void resized(long newSectors) {
        loop.watchdog(Duration.ofSeconds(30)).run("vblk serve resize", () -> {
            dev.resize(newSectors);
            vdev.configChanged();
        });
        LOG.info("vblk serve: capacity is now {} sectors", newSectors);
    }

    /**
     * Test seam ({@code vblk serve --x-hold-after-take N}): holds the queue's
     * thread once it has taken the {@code nth} write request from the avail
     * ring and marked it in flight, before the backend sees it; the line
     * saying so goes to {@code announce}. For a test that kills the back-end
     * with a request in flight at a known step. The hold lasts until the
     * server closes. Unarmed (the default), the device keeps its no-op
     * observer and nothing changes on the request path.
     */
    public void holdAfterTake(long nth, java.util.function.Consumer<String> announce) {
        TakenRequestHold h = new TakenRequestHold(nth, announce);
        hold = h;
        dev.setObserver(h);
        LOG.warn("vblk serve: test switch armed: write request {} will be held in flight", nth);
    }

    public Options options() {
        return options;
    }

    public MainLoop mainLoop() {
        return loop;
    }

    public BlockBackend backend() {
        return blk;
    }

    public VirtioBlk device() {
        return dev;
    }

    public VhostUserServer server() {
        return server;
    }

    public Path socket() {
        return options.socket();
    }

    public String describe() {
        StringBuilder sb = new StringBuilder();
        if (server != null) {
            sb.append(server.describe());
        }
        if (dev != null) {
            sb.append(dev.describe());
        }
        if (dataplane != null) {
            sb.append("  ").append(dataplane.describe()).append('\n');
        }
        return sb.toString();
    }

    /** Stops serving: the connection ends (rings stopped, disk flushed), the socket file is removed. Idempotent. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return; // a second teardown (the shutdown hook and a caller at once) would wait on a loop that no longer runs
        }
        TakenRequestHold h = hold;
        if (h != null) {
            h.release(); // the held request completes, so the rings can stop
        }
        if (server != null) {
            try {
                server.close();
            } catch (RuntimeException e) {
                LOG.warn("vblk serve: closing the server failed: {}", e.toString());
            }
        }
        if (vdev != null || blk != null) {
            try {
                loop.watchdog(Duration.ofSeconds(30)).run("vblk serve teardown", () -> {
                    if (vdev != null) {
                        vdev.close();
                    }
                    if (blk != null && blk.root() != null) {
                        blk.detach(); // closes the image
                    }
                });
            } catch (RuntimeException e) {
                LOG.debug("vblk serve: teardown failed", e);
            }
        }
        if (diagnostics != null) {
            try {
                diagnostics.close();
            } catch (Exception e) {
                LOG.debug("removing diagnostics failed", e);
            }
        }
        layer.close();
        loop.close();
    }
}
