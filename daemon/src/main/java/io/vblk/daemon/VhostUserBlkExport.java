package io.vblk.daemon;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.AioWait;
import io.vblk.aio.IOThread;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.dataplane.QueueMapping;
import io.vblk.dataplane.VirtioBlkDataplane;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;
import io.vblk.vhost.VhostUserBlkServer;
import io.vblk.vhost.VhostUserDevice;
import io.vblk.vhost.VhostUserEvents;
import io.vblk.vhost.VhostUserException;
import io.vblk.vhost.VhostUserServer;
import io.vblk.virtio.blk.VirtioBlk;
import io.vblk.virtio.blk.VirtioBlkConfig;

import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code --export type=vhost-user-blk}: QEMU's vhost-user-blk export
 * (block/export/vhost-user-blk-server.c) built from the same parts as
 * {@code vblk serve} — a {@link BlockBackend} on the node, a
 * {@link VirtioBlk} whose queues run on the export's IOThread
 * ({@link VirtioBlkDataplane}), behind a {@link VhostUserDevice} and a
 * {@link VhostUserServer} listening on {@code addr.path} — but in the
 * daemon's shared main loop and block graph.
 *
 * <p>Two members are vblk's own, for {@code vblk serve} (which builds its
 * disk as this export): {@code x-serial} (the virtio-blk serial, at most 20
 * characters; default: the export id) and {@code x-iothreads} (a list of
 * IOThread ids the queues are spread over round-robin, the node living in
 * the first; qsd 7.2 has one {@code iothread} per export).
 */
public final class VhostUserBlkExport implements BlockExport {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserBlkExport.class);
    public static final String TYPE = "vhost-user-blk";
    /** QEMU's vhost-user-blk logical-block-size bounds. */
    static final long MIN_BLOCK = 512;
    static final long MAX_BLOCK = 2L << 20;

    private final String id;
    private final BlockNode node;
    private final ExportContext ctx;
    private final IOThread iothread;
    /** x-iothreads: the queues' IOThreads, round-robin; empty: every queue on {@link #iothread}. */
    private final java.util.List<IOThread> threads;
    private final Path path;
    private BlockBackend blk;
    private VirtioBlk dev;
    private VhostUserDevice vdev;
    private VhostUserServer server;
    private final AtomicBoolean shutDown = new AtomicBoolean();

    /** The {@link ExportType} of this export. */
    public static final class Type implements ExportType {
        @Override
        public String type() {
            return TYPE;
        }

        @Override
        public BlockExport create(ExportContext ctx, BlockExportOptions common, QapiArgs args) {
            QapiArgs addr = args.object("addr");
            String addrType = addr.enumValue("type", "unix", "inet", "fd", "vsock");
            String path = null;
            if (addrType.equals("unix")) {
                path = addr.str("path");
                addr.accept("abstract");
                addr.accept("tight");
                if (addr.has("abstract") || addr.has("tight")) {
                    throw QmpError.generic("addr.abstract and addr.tight are not supported by vblk");
                }
            }
            long lbs = args.optSize("logical-block-size", MIN_BLOCK);
            long queues = args.optInt("num-queues", 1);
            String serial = args.optStr("x-serial", null);
            java.util.List<String> threadIds = args.optStrList("x-iothreads");
            args.end();
            if (serial != null && serial.length() > 20) {
                throw QmpError.generic("x-serial is at most 20 characters");
            }
            java.util.List<IOThread> threads = new java.util.ArrayList<>();
            if (threadIds != null) {
                for (String t : threadIds) {
                    IOThread th = ctx.iothread(t);
                    if (th == null) {
                        throw QmpError.generic("Cannot find iothread " + t);
                    }
                    threads.add(th);
                }
                if (threads.isEmpty() || common.iothread() != null) {
                    throw QmpError.generic("x-iothreads needs at least one IOThread and no iothread");
                }
            }
            if (!addrType.equals("unix")) {
                throw QmpError.generic("vhost-user-blk exports on addr.type=" + addrType
                        + " are not supported by vblk (use addr.type=unix)");
            }
            if (lbs < MIN_BLOCK || lbs > MAX_BLOCK || Long.bitCount(lbs) != 1) {
                throw QmpError.generic("Property " + common.id() + ".logical-block-size doesn't take value " + lbs
                        + " (minimum: " + MIN_BLOCK + ", maximum: " + MAX_BLOCK + ")");
            }
            if (lbs != MIN_BLOCK) {
                throw QmpError.generic("logical-block-size=" + lbs + " is not supported yet by vblk's virtio-blk "
                        + "device (only 512)");
            }
            if (queues <= 0) {
                throw QmpError.generic("num-queues must be greater than 0");
            }
            if (queues > VirtioBlkConfig.MAX_QUEUES) {
                throw QmpError.generic("num-queues must be at most " + VirtioBlkConfig.MAX_QUEUES);
            }
            if (common.writethrough()) {
                throw QmpError.generic("writethrough=on is not supported yet by vblk's exports");
            }
            VhostUserBlkExport e = new VhostUserBlkExport(common, ctx, Path.of(path), threads);
            e.start(common, (int) queues, serial);
            return e;
        }
    }

    private VhostUserBlkExport(BlockExportOptions o, ExportContext ctx, Path path, java.util.List<IOThread> threads) {
        this.id = o.id();
        this.node = o.node();
        this.ctx = ctx;
        this.path = path;
        this.threads = threads;
        this.iothread = !threads.isEmpty() ? threads.get(0) : o.iothread() != null ? o.iothread() : ctx.inMainLoop("export iothread", () -> {
            for (IOThread t : ctx.loop().iothreads()) {
                if (t.context() == node.context()) {
                    return t; // the node already lives in an IOThread: serve it there (QEMU uses the node's context)
                }
            }
            return ctx.defaultIothread();
        });
    }

    private void start(BlockExportOptions o, int queues, String xSerial) {
        BlockLayer layer = ctx.layer();
        ctx.inMainLoop("block-export-add " + id, () -> {
            if (node.context() != iothread.context()) {
                if (!node.context().isMain() && o.fixedIothread()) {
                    throw QmpError.generic("Cannot change iothread of active block backend");
                }
                try {
                    layer.setAioContext(node, iothread.context());
                } catch (BlockException e) {
                    throw QmpError.generic(e.getMessage());
                }
            }
            if (o.writable() && node.isReadOnly()) {
                throw QmpError.generic("Cannot export node '" + node.name() + "' writable: it is read-only");
            }
            AioContext nc0 = node.context();
            blk = layer.newBackend("export-" + id);
            try (AioContextLock.Held h0 = nc0.inHomeThread() ? null : nc0.acquire()) {
                blk.attach(node);
                blk.setReadOnly(!o.writable());
                String serial = xSerial != null ? xSerial : id.length() > 20 ? id.substring(0, 20) : id;
                VirtioBlkConfig conf = new VirtioBlkConfig(queues, VhostUserBlkServer.MAX_QUEUE_SIZE, serial, true);
                dev = new VirtioBlk("vhost-user-blk:" + id, blk, conf, ctx.loop().context(), null);
                vdev = new VhostUserDevice(dev);
                QueueMapping map = threads.size() > 1 ? QueueMapping.roundRobin(threads, queues)
                        : QueueMapping.single(iothread, queues);
                VirtioBlkDataplane dp = new VirtioBlkDataplane(dev, vdev, map, ctx.loop());
                vdev.setDataplane(dp);
            } catch (RuntimeException e) {
                AioContext nc = node.context();
                try (AioContextLock.Held h = nc.inHomeThread() ? null : nc.acquire()) {
                    layer.removeBackend(blk);
                }
                blk = null;
                throw e;
            }
            return null;
        });
        try {
            server = VhostUserServer.start(ctx.loop(), path, vdev, this::flushAfterDisconnect, logger());
        } catch (VhostUserException | IllegalArgumentException e) {
            releaseDevice();
            throw QmpError.generic("Failed to bind socket to " + path + ": " + e.getMessage());
        }
    }

    /** The daemon's log lines, and whoever else listens ({@link ExportContext#vhostUserEvents}). */
    private VhostUserEvents logger() {
        VhostUserEvents x = ctx.vhostUserEvents(id);
        VhostUserEvents also = x != null ? x : VhostUserEvents.NONE;
        return new VhostUserEvents() {
            @Override
            public void connected(int pid) {
                LOG.info("export '{}': front-end connected (pid {})", id, pid);
                also.connected(pid);
            }

            @Override
            public void disconnected(String why) {
                LOG.info("export '{}': front-end disconnected: {}", id, why);
                also.disconnected(why);
            }

            @Override
            public void ringsStarted(java.util.List<Integer> rings) {
                also.ringsStarted(rings);
            }

            @Override
            public void ringsStopped(java.util.List<Integer> rings) {
                also.ringsStopped(rings);
            }

            @Override
            public void refused(String request, String why) {
                also.refused(request, why);
            }
        };
    }

    /** After a front-end left: what it was told is written is on the image. Main loop. */
    private void flushAfterDisconnect() {
        BlockBackend b = blk;
        if (b == null || b.isReadOnly() || b.root() == null) {
            return;
        }
        int r = flushSync(b);
        if (r < 0) {
            LOG.error("export '{}': flush after disconnect failed: errno {}", id, -r);
        }
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public String type() {
        return TYPE;
    }

    /** The node served now: after a mirror's pivot, the target (QEMU's {@code blk_bs(exp->blk)}). */
    @Override
    public String nodeName() {
        BlockBackend b = blk;
        BlockNode r = b == null ? null : b.root();
        return r != null ? r.name() : node.name();
    }

    @Override
    public AioContext context() {
        return iothread.context();
    }

    public Path path() {
        return path;
    }

    /** The test switch's hold ({@link #holdAfterTake}), or null. */
    private volatile io.vblk.vhost.TakenRequestHold hold;

    /**
     * False even with a front-end connected: QEMU's vhost-user-blk export
     * takes no export reference per connection, so qsd 7.2 deletes it in
     * mode=safe and disconnects the front-end (DaemonQmpTest checks this
     * against qsd). vblk does the same.
     */
    @Override
    public boolean hasClients() {
        return false;
    }

    public boolean isConnected() {
        VhostUserServer s = server;
        return s != null && s.isConnected();
    }

    /**
     * Test seam ({@code vblk serve --x-hold-after-take N}): holds the queue's
     * thread once it has taken the {@code nth} write request from the avail
     * ring and marked it in flight, before the block layer sees it; the line
     * saying so goes to {@code announce}. The hold lasts until shutdown.
     */
    public void holdAfterTake(long nth, java.util.function.Consumer<String> announce) {
        io.vblk.vhost.TakenRequestHold h = new io.vblk.vhost.TakenRequestHold(nth, announce);
        hold = h;
        dev.setObserver(h);
        LOG.warn("export '{}': test switch armed: write request {} will be held in flight", id, nth);
    }

    @Override
    public void shutdown() {
        if (!shutDown.compareAndSet(false, true)) {
            return;
        }
        io.vblk.vhost.TakenRequestHold h = hold;
        if (h != null) {
            h.release(); // the held request completes, so the rings can stop
        }
        if (server != null) {
            server.close(); // ends the connection: rings stopped, requests drained, disk flushed; socket removed
        }
        releaseDevice();
    }

    private void releaseDevice() {
        ctx.inMainLoop("release export " + id, () -> {
            if (vdev != null) {
                vdev.close();
            }
            if (blk != null) {
                int r = blk.root() == null || blk.isReadOnly() ? 0 : flushSync(blk);
                if (r < 0) {
                    LOG.error("export '{}': final flush failed: errno {}", id, -r);
                }
                AioContext nc = node.context();
                try (AioContextLock.Held h = nc.inHomeThread() ? null : nc.acquire()) {
                    ctx.layer().removeBackend(blk);
                }
                blk = null;
            }
            // the node goes home when nothing else serves it from the IOThread (QEMU leaves it; see README)
            if (!node.isClosed() && !node.context().isMain() && node.parents().isEmpty()) {
                ctx.layer().setAioContext(node, ctx.loop().context());
            }
            return null;
        });
    }

    /**
     * The disk may have a new length (QMP {@code block_resize} of its node or
     * of a node under it): if the device's capacity differs from the disk's,
     * it follows and the connected front-end is told with
     * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG (QEMU's {@code resize_cb} of the
     * export's BlockBackend, {@code vu_blk_exp_resize}). Off the main loop:
     * waits for it.
     */
    void diskResized() {
        Long sectors = ctx.inMainLoop("resize export " + id, () -> {
            if (dev == null || blk == null || shutDown.get()) {
                return null;
            }
            long s = blk.length() / 512;
            if (s == dev.capacitySectors()) {
                return null;
            }
            dev.resize(s);
            vdev.configChanged();
            return s;
        });
        if (sectors != null) {
            LOG.info("export '{}': capacity is now {} sectors, front-end told", id, sectors);
        }
    }

    /** Flushes {@code b} from the main loop, waiting in a nested poll (its context may be an IOThread). */
    private int flushSync(BlockBackend b) {
        AtomicBoolean done = new AtomicBoolean();
        AtomicInteger ret = new AtomicInteger();
        AioContext bc = b.context();
        Runnable issue = () -> b.flush(r -> {
            ret.set(r);
            done.set(true);
            ctx.loop().aioWait().kick();
        });
        if (bc.inHomeThread()) {
            issue.run();
        } else {
            bc.bhScheduleOneshot("export-flush", issue);
        }
        AioWait.pollWhile(ctx.loop().context(), () -> !done.get());
        return ret.get();
    }

    @Override
    public String describe() {
        VhostUserServer s = server;
        return "export '" + id + "' (vhost-user-blk on " + path + ", node '" + node.name() + "', iothread '"
                + iothread.name() + "')" + (s != null ? "\n" + s.describe() : "");
    }
}
