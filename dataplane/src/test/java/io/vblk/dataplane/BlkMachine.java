package io.vblk.dataplane;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

import io.vblk.aio.AioContext;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlkDebugDriver;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.FileOptions;
import io.vblk.block.NullDriver;
import io.vblk.testkit.BlkDriver;
import io.vblk.testkit.Irqchip;
import io.vblk.testkit.Spin;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.VirtioPciTransport;
import io.vblk.virtio.blk.VirtioBlk;
import io.vblk.virtio.blk.VirtioBlkConfig;

/**
 * The host side of a one-disk machine for the virtio-blk tests: a main loop,
 * the block graph (a {@code file} node over an image in a temporary
 * directory, a {@code raw} node on it, optionally a {@code blkdebug} filter
 * for error injection and request suspension; or a {@code null} node), a
 * backend, guest RAM, the virtio-blk device in the main loop's context, its
 * virtio-pci function and the interrupt controller ({@link Irqchip}).
 * {@link Serving} says where the device's queues and the backend run once the
 * driver is ready: the real {@link VirtioBlkDataplane} serves them from
 * IOThreads (see {@link PlacedDataplane}). Tests reach the device only
 * through the test kit's {@link BlkDriver} (config space, BARs, guest RAM,
 * interrupts); the image file is read directly to compare the disk with what
 * the guest expects.
 */
final class BlkMachine implements AutoCloseable {
    static final Duration DEADLINE = Duration.ofSeconds(30);
    static final long RAM_BYTES = 32L << 20;

    /** Where requests are served once the driver set DRIVER_OK. */
    enum Serving {
        /** Queues and backend in the main loop (no dataplane: kicks are BHs in the home context). */
        DIRECT,
        /** Queues and backend in one IOThread (ioeventfds, irqfds), as a dataplane with one iothread. */
        IOTHREAD,
        /**
         * Queue q in IOThread io[(q + 1) % 2], backend in io0: queue 0 (and every even queue) hands its requests
         * to another context and gets the completions back; odd queues live with the backend.
         */
        SPLIT
    }

    /** What to build. */
    static final class Spec {
        int queues = 1;
        int queueSize = 256;
        String serial = "vblk-test-serial-01";
        long diskBytes = 4L << 20;
        boolean readOnly;
        boolean blkdebug;
        boolean nullDisk;
        Serving serving = Serving.DIRECT;
        long seed = 1;

        Spec queues(int n) {
            queues = n;
            return this;
        }

        Spec queueSize(int n) {
            queueSize = n;
            return this;
        }

        Spec serial(String s) {
            serial = s;
            return this;
        }

        Spec diskBytes(long n) {
            diskBytes = n;
            return this;
        }

        Spec readOnly(boolean ro) {
            readOnly = ro;
            return this;
        }

        Spec blkdebug(boolean on) {
            blkdebug = on;
            return this;
        }

        Spec nullDisk(boolean on) {
            nullDisk = on;
            return this;
        }

        Spec serving(Serving s) {
            serving = s;
            return this;
        }

        Spec seed(long s) {
            seed = s;
            return this;
        }
    }

    final Spec spec;
    final MainLoop loop;
    final BlockLayer layer;
    final GuestMemory mem;
    final Path image;
    final byte[] initialContent;
    final BlockBackend blk;
    final BlkDebugDriver debug;
    final VirtioBlk dev;
    final VirtioPciTransport transport;
    final Irqchip irq;
    final IOThread[] io;
    /** The dataplane serving the device now (null: direct). */
    volatile PlacedDataplane dataplane;
    private volatile Serving serving;
    private final java.util.EnumMap<Serving, PlacedDataplane> dataplanes = new java.util.EnumMap<>(Serving.class);
    private boolean closed;

    BlkMachine(Spec spec, Path dir) {
        this.spec = spec;
        try {
            if (spec.nullDisk) {
                image = null;
                initialContent = null;
            } else {
                initialContent = new byte[(int) spec.diskBytes];
                new java.util.Random(spec.seed).nextBytes(initialContent);
                image = dir.resolve("disk.raw");
                Files.write(image, initialContent);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        loop = new MainLoop();
        layer = new BlockLayer(loop);
        mem = GuestMemory.allocate(0, RAM_BYTES);
        io = spec.serving == Serving.DIRECT ? new IOThread[0]
                : spec.serving == Serving.IOTHREAD ? new IOThread[] {loop.newIOThread("io0")}
                : new IOThread[] {loop.newIOThread("io0"), loop.newIOThread("io1")};
        BlkDebugDriver[] dbg = new BlkDebugDriver[1];
        blk = inMain("open the disk", () -> {
            BlockNode top;
            if (spec.nullDisk) {
                top = layer.openNull("disk", NullDriver.Options.of(spec.diskBytes));
            } else {
                // discard=unmap: the tests check that a guest discard reaches the file as a hole
                BlockNode file = layer.openFile("disk-file", image, FileOptions.defaults()
                        .withDiscard(FileOptions.Discard.UNMAP).withReadOnly(spec.readOnly));
                top = layer.openRaw("disk", file, 0, -1);
                file.unref();
            }
            if (spec.blkdebug) {
                BlockNode d = layer.openBlkDebug("disk-debug", top);
                top.unref();
                top = d;
                dbg[0] = (BlkDebugDriver) d.driver();
            }
            BlockBackend b = layer.newBackend("blk0");
            b.attach(top);
            top.unref();
            return b;
        });
        debug = dbg[0];
        VirtioBlkConfig conf = new VirtioBlkConfig(spec.queues, spec.queueSize, spec.serial, true);
        dev = new VirtioBlk("virtio-blk0", blk, conf, loop.context(), mem);
        transport = new VirtioPciTransport(dev);
        irq = new Irqchip(loop, transport.msixVectors());
        loop.addDiagnostics("virtio-blk0 (virtio-pci)", transport::describe);
        transport.setInterruptSink(irq);
        serveWith(spec.serving);
    }

    /**
     * Chooses where the queues are served from the next DRIVER_OK on (call while
     * the device is reset). SPLIT needs a machine built with SPLIT (two
     * IOThreads); IOTHREAD needs at least one IOThread.
     */
    synchronized void serveWith(Serving s) {
        if (s != Serving.DIRECT && io.length < (s == Serving.SPLIT ? 2 : 1)) {
            throw new IllegalArgumentException(s + " serving on a machine built for " + spec.serving);
        }
        PlacedDataplane dp = s == Serving.DIRECT ? null : dataplanes.computeIfAbsent(s, this::newDataplane);
        serving = s;
        dataplane = dp;
        dev.setIoeventfdOps(dp);
    }

    /**
     * The real dataplane for {@code s}: IOTHREAD maps every queue to io0;
     * SPLIT deals the queues over io1, io0 (queue q in io[(q + 1) % 2]) and
     * places the backend in io0, apart from queue 0.
     */
    private PlacedDataplane newDataplane(Serving s) {
        QueueMapping mapping = s == Serving.IOTHREAD ? QueueMapping.single(io[0], spec.queues)
                : QueueMapping.roundRobin(List.of(io[1], io[0]), spec.queues);
        VirtioBlkDataplane real = new VirtioBlkDataplane(dev, transport, mapping, loop);
        return new PlacedDataplane(real, blk, s == Serving.SPLIT ? io[0].context() : null);
    }

    /** A guest driver for this machine's function: probed, not yet initialised. */
    BlkDriver newDriver() {
        return new BlkDriver(transport, mem, irq, watchdog());
    }

    Serving serving() {
        return serving;
    }

    /** Spins until {@code cond} holds, within {@link #DEADLINE}. */
    static void spin(String what, java.util.function.BooleanSupplier cond) {
        Spin.until(what, DEADLINE, cond);
    }

    Watchdog watchdog() {
        return loop.watchdog(DEADLINE);
    }

    <T> T inMain(String what, Callable<T> task) {
        return watchdog().call(what, task);
    }

    void inMain(String what, Runnable task) {
        watchdog().run(what, task);
    }

    /** Waits until everything the main loop had scheduled before now has run. */
    void settleMain() {
        inMain("settle", () -> { });
        inMain("settle", () -> { });
    }

    /** Waits until every event loop (main and IOThreads) ran what was scheduled before now, twice over. */
    void settleAll() {
        for (int round = 0; round < 2; round++) {
            for (AioContext c : loop.contexts()) {
                watchdog().await("settle " + c.name(), c.run("settle", () -> { }));
            }
        }
    }

    /** The image file's bytes as they are now (the host's view of the disk; reads go through the page cache). */
    byte[] disk() {
        return diskRange(0, (int) spec.diskBytes);
    }

    byte[] diskRange(long offset, int len) {
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(len);
            while (b.hasRemaining()) {
                int n = ch.read(b, offset + b.position());
                if (n < 0) {
                    break;
                }
            }
            return b.array();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Where queue {@code q} is served once the driver is ready. */
    AioContext expectedQueueContext(int q) {
        return switch (serving) {
            case DIRECT -> loop.context();
            case IOTHREAD -> io[0].context();
            case SPLIT -> io[(q + 1) % 2].context();
        };
    }

    /**
     * Stops the machine: a system reset of the function (which stops the
     * dataplane and brings the backend home), then the block graph and the
     * loops. Fails if any event-loop callback threw or the interrupt
     * controller saw a bad delivery.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        List<String> failures = new ArrayList<>();
        try {
            // A driver reset first: it is queued behind any status change still being delivered (a DRIVER_OK
            // whose dataplane start is under way), which a system reset from a nested poll would not be.
            dev.writeStatus(0);
            inMain("system reset and unplug", () -> {
                transport.systemReset();
                layer.removeBackend(blk);
            });
        } catch (RuntimeException e) {
            failures.add("shutdown: " + e);
        }
        failures.addAll(loop.failures());
        failures.addAll(irq.errors);
        irq.close();
        layer.close();
        loop.close();
        transport.close();
        mem.close();
        if (!failures.isEmpty()) {
            throw new AssertionError("event-loop failures: " + failures);
        }
    }
}
