package io.vblk.guest;

import io.vblk.aio.AioWait;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.aio.VisibilityModel;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.NullDriver;
import io.vblk.dataplane.QueueMapping;
import io.vblk.dataplane.VirtioBlkDataplane;
import io.vblk.firmware.BootVerdict;
import io.vblk.firmware.Firmware;
import io.vblk.vhost.VhostUserBlkFrontend;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.RamRegion;
import io.vblk.virtio.VirtioPciTransport;
import io.vblk.virtio.VirtioStatus;
import io.vblk.virtio.blk.VirtioBlk;
import io.vblk.virtio.blk.VirtioBlkConfig;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The simulated machine: a main loop, IOThreads, vCPUs, guest RAM, a PCI bus
 * with virtio-blk disks (optionally served by a dataplane), an interrupt
 * controller and a serial console. The guest — the firmware, the Linux-like
 * driver — reaches the devices only through its {@link MachinePlatform}.
 *
 * <p>{@link #systemReset()} follows the backtrace of seed 000: vCPUs stop,
 * each device resets (virtio-pci reset → dataplane stop → backend moved back
 * to the main context → drain), then the firmware restarts on vCPU 0. It may
 * be requested from the main loop, a vCPU (port 0xCF9) or any other thread.
 *
 * <p>A disk may instead be a vhost-user-blk device ({@link DiskSpec#vhostUser}):
 * the same virtio-pci function, with a {@link VhostUserBlkFrontend} whose
 * queues a back-end in another process serves. Guest RAM is then a shared
 * memfd the back-end maps, as QEMU's {@code memory-backend-memfd,share=on}.
 */
public final class Machine implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Machine.class);
    /** PCI slot of the first disk, so it shows as 00:04.0 like QEMU's first free slot. */
    public static final int FIRST_DISK_SLOT = 4;
    /** Guest RAM below this is the firmware's; the Linux-like driver allocates above it. */
    public static final long DRIVER_RAM_START = 1L << 20;

    /**
     * One disk: its backend, device, transport and (if any) dataplane; or, for a
     * vhost-user disk, its transport and {@code vhostUser} front-end (backend,
     * device and dataplane are then null: they live in the back-end).
     */
    public record Disk(int slot, BlockBackend backend, VirtioBlk device, VirtioPciTransport transport,
                       VirtioBlkDataplane dataplane, VhostUserBlkFrontend vhostUser) {
        /** bus 0, device {@code slot}, function 0. */
        public int bdf() {
            return slot << 3;
        }
    }

    private final MachineConfig cfg;
    private final MainLoop loop;
    private final BlockLayer layer;
    private final Map<String, IOThread> iothreads = new LinkedHashMap<>();
    private final GuestMemory ram;
    private final InterruptController irq;
    private final PciHost pci = new PciHost();
    private final SerialConsole serial = new SerialConsole();
    private final Vcpu[] vcpus;
    private final MachinePlatform[] platforms;
    private final List<Disk> disks = new ArrayList<>();
    private final List<AutoCloseable> diagnostics = new ArrayList<>();
    private volatile int lastDebugExit = -1;
    private volatile boolean paused;
    private volatile CompletableFuture<Void> nextPause = new CompletableFuture<>();
    private volatile long resets;
    private volatile CompletableFuture<BootVerdict> guestResetBoot;

    private Machine(MachineConfig cfg, VisibilityModel model) {
        this.cfg = cfg;
        this.loop = new MainLoop("main-loop", cfg.legacy(), model);
        this.layer = new BlockLayer(loop);
        layer.setFileDefaults(cfg.fileOptions());
        for (String name : cfg.iothreads()) {
            iothreads.put(name, loop.newIOThread(name, cfg.pollMaxNs()));
        }
        this.ram = cfg.disks().stream().anyMatch(DiskSpec::isVhostUser)
                ? new GuestMemory(RamRegion.memfd("vblk-guest-ram", 0, cfg.ramBytes())) // a back-end maps it
                : GuestMemory.allocate(0, cfg.ramBytes());
        this.irq = new InterruptController(cfg.vcpus());
        this.vcpus = new Vcpu[cfg.vcpus()];
        this.platforms = new MachinePlatform[cfg.vcpus()];
        Runnable kickMain = () -> loop.aioWait().kick();
        for (int i = 0; i < vcpus.length; i++) {
            InterruptController.Lapic lapic = irq.lapic(i);
            platforms[i] = new MachinePlatform("vcpu" + i, loop, pci, ram, serial, lapic, code -> lastDebugExit = code,
                    this::requestGuestReset);
            vcpus[i] = new Vcpu(i, platforms[i], lapic, kickMain);
        }
        diagnostics.add(loop.addDiagnostics("machine", this::describe));
    }

    /** Builds and starts a machine; a bad image or option is an exception with a clear message. */
    public static Machine start(MachineConfig cfg) {
        return start(cfg, null);
    }

    /**
     * A machine whose event loops and virtqueues run under a scenario's
     * store-buffer {@code model} (the memory-ordering bugs; null: the JVM's
     * own ordering, as {@link #start(MachineConfig)}).
     */
    public static Machine start(MachineConfig cfg, VisibilityModel model) {
        Machine m = new Machine(cfg, model);
        try {
            m.watchdog(Duration.ofSeconds(60)).run("machine setup", m::plugDisks);
            return m;
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
    }

    private void plugDisks() {
        int i = 0;
        for (DiskSpec spec : cfg.disks()) {
            String name = "disk" + i;
            if (spec.isVhostUser()) {
                plugVhostUser(i++, spec);
                continue;
            }
            BlockNode node = spec.image() == null
                    ? layer.openNull(name, new NullDriver.Options(spec.nullSize(), true, spec.nullLatencyNs()))
                    : layer.openImage(name, spec.image(), spec.format(), spec.readOnly());
            if (spec.errorInjection()) {
                BlockNode image = node;
                node = layer.openBlkDebug(name + "-blkdebug", image);
                image.unref();
            }
            BlockBackend blk = layer.newBackend("blk" + i);
            blk.attach(node);
            node.unref();
            blk.setReadOnly(spec.readOnly());
            blk.setErrorPolicy(spec.readPolicy(), spec.writePolicy());
            blk.setStopRequest(this::pauseForError);
            VirtioBlkConfig conf = new VirtioBlkConfig(spec.queues(), spec.queueSize(),
                    spec.serial() != null ? spec.serial() : "vblk-" + name, true);
            VirtioBlk dev = new VirtioBlk("virtio-blk" + i, blk, conf, loop.context(), ram);
            VirtioPciTransport transport = new VirtioPciTransport(dev);
            transport.setInterruptSink(new IrqchipSink(irq));
            VirtioBlkDataplane dp = null;
            try {
                if (spec.dataplane()) {
                    List<IOThread> ts = new ArrayList<>();
                    for (String t : spec.iothreads()) {
                        ts.add(iothreads.get(t));
                    }
                    dp = new VirtioBlkDataplane(dev, transport, QueueMapping.roundRobin(ts, spec.queues()), loop);
                } else {
                    blk.pin("served by the main loop (no dataplane)");
                }
            } catch (RuntimeException e) {
                transport.close(); // not in disks yet, so close() would not find its eventfds
                throw e;
            }
            int slot = FIRST_DISK_SLOT + i;
            pci.plug(slot, new VirtioPciFunction(transport));
            disks.add(new Disk(slot, blk, dev, transport, dp, null));
            i++;
        }
    }

    /** QEMU's {@code -device vhost-user-blk-pci}: connect, negotiate, plug the function. */
    private void plugVhostUser(int i, DiskSpec spec) {
        VhostUserBlkFrontend dev = VhostUserBlkFrontend.connect("vhost-user-blk" + i, spec.vhostUser(), spec.queues(),
                spec.queueSize(), loop.context(), ram, VhostUserBlkFrontend.DEFAULT_REPLY_TIMEOUT);
        VirtioPciTransport transport;
        try {
            transport = new VirtioPciTransport(dev);
        } catch (RuntimeException e) {
            dev.close();
            throw e;
        }
        dev.setTransport(transport);
        transport.setInterruptSink(new IrqchipSink(irq));
        int slot = FIRST_DISK_SLOT + i;
        pci.plug(slot, new VirtioPciFunction(transport));
        disks.add(new Disk(slot, null, null, transport, null, dev));
    }

    // ------------------------------------------------------------------ accessors

    public MachineConfig config() {
        return cfg;
    }

    public MainLoop mainLoop() {
        return loop;
    }

    public BlockLayer blockLayer() {
        return layer;
    }

    public IOThread iothread(String name) {
        return iothreads.get(name);
    }

    public List<IOThread> iothreads() {
        return new ArrayList<>(iothreads.values());
    }

    public GuestMemory memory() {
        return ram;
    }

    public SerialConsole console() {
        return serial;
    }

    public List<Disk> disks() {
        return List.copyOf(disks);
    }

    public Disk disk(int i) {
        return disks.get(i);
    }

    public Vcpu vcpu(int i) {
        return vcpus[i];
    }

    public int vcpus() {
        return vcpus.length;
    }

    public long resets() {
        return resets;
    }

    public boolean isPaused() {
        return paused;
    }

    public Watchdog watchdog(Duration d) {
        return loop.watchdog(d);
    }

    /** The firmware's last verdict from its debug-exit port, or -1. */
    public int lastDebugExit() {
        return lastDebugExit;
    }

    // ------------------------------------------------------------------ guest programs

    /** Runs a guest program on vCPU {@code i}. */
    public <T> CompletableFuture<T> runOnVcpu(int i, String name, Function<MachinePlatform, T> program) {
        return vcpus[i].run(name, program);
    }

    /** Starts the firmware on vCPU 0 (after power-on or a reset). */
    public CompletableFuture<BootVerdict> startFirmware() {
        serial.clear();
        return vcpus[0].run("firmware", p -> new Firmware(p, cfg.firmware()).boot());
    }

    /** Boots and waits: the firmware's verdict, its console, and the dump if it reported a hang. */
    public BootReport boot() {
        return awaitBoot(startFirmware());
    }

    /** Waits for a boot; bounded by the firmware's own read timeout plus a margin for the host watchdog. */
    public BootReport awaitBoot(CompletableFuture<BootVerdict> f) {
        long t0 = System.nanoTime();
        Duration bound = cfg.firmware().readTimeout().plus(cfg.firmware().resetTimeout()).plusSeconds(30);
        BootVerdict v = watchdog(bound).await("firmware boot", f);
        long ns = System.nanoTime() - t0;
        String dump = v == BootVerdict.HANG_AT_MBR_READ ? loop.dump() : null;
        return new BootReport(v, serial.lines(), ns, dump);
    }

    // ------------------------------------------------------------------ reset, pause, resume

    /**
     * System reset, then the firmware boots again on vCPU 0: QEMU's
     * {@code qemu_system_reset}. From the main loop it runs inline; from
     * another thread it runs in the main loop and this thread waits.
     */
    public CompletableFuture<BootVerdict> systemReset() {
        if (!loop.context().inHomeThread()) {
            return watchdog(Duration.ofSeconds(120)).call("system reset", this::systemReset);
        }
        stopVcpus();
        for (Disk d : disks) {
            d.transport().systemReset(); // virtio-pci reset: dataplane stop, backend home, drain
        }
        resets++;
        paused = false;
        for (Vcpu v : vcpus) {
            v.resume();
        }
        return startFirmware();
    }

    /** A vCPU wrote the reset port: the main loop resets and reboots; the vCPU has already left guest code. */
    private void requestGuestReset() {
        CompletableFuture<BootVerdict> boot = new CompletableFuture<>();
        guestResetBoot = boot;
        loop.run("guest-requested reset", () -> systemReset().whenComplete((v, e) -> {
            if (e != null) {
                boot.completeExceptionally(e);
            } else {
                boot.complete(v);
            }
        }));
    }

    /** The boot a guest-requested reset started, or null. */
    public CompletableFuture<BootVerdict> lastGuestResetBoot() {
        return guestResetBoot;
    }

    /** Kicks every vCPU out of its program and polls the main loop until they all parked (pause_all_vcpus). */
    private void stopVcpus() {
        for (Vcpu v : vcpus) {
            v.requestStop();
        }
        AioWait.pollWhile(loop.context(), this::anyVcpuRunning);
    }

    private boolean anyVcpuRunning() {
        for (Vcpu v : vcpus) {
            if (!v.isQuiescent()) {
                return true;
            }
        }
        return false;
    }

    /** VM stop: vCPUs parked mid-program, dataplanes stopped (everything answered and signalled). */
    public void pause() {
        if (!loop.context().inHomeThread()) {
            watchdog(Duration.ofSeconds(120)).run("pause", this::pause);
            return;
        }
        if (paused) {
            return;
        }
        for (Vcpu v : vcpus) {
            v.requestPause();
        }
        AioWait.pollWhile(loop.context(), this::anyVcpuRunning);
        for (Disk d : disks) {
            if (d.dataplane() != null) {
                d.dataplane().stopIoeventfd();
            } else if (d.vhostUser() != null) {
                d.vhostUser().awaitRingsUsed(); // what the paused guest queued is answered while it can be signalled
                d.vhostUser().vhostStop();
            }
        }
        // QEMU's vm_stop ends with bdrv_drain_all: what the guest queued before it stopped is answered now
        AioWait.pollWhile(loop.context(), this::anyDeviceBusy);
        paused = true;
        CompletableFuture<Void> signal = nextPause;
        nextPause = new CompletableFuture<>();
        signal.complete(null);
    }

    /** Completes when the machine next pauses (a control-surface stop, or a stopping I/O error). */
    public CompletableFuture<Void> nextPause() {
        return nextPause;
    }

    private boolean anyDeviceBusy() {
        for (Disk d : disks) {
            if (d.device() != null && d.device().busy()) { // a vhost-user back-end answered all in its stop
                return true;
            }
        }
        return false;
    }

    /** VM cont: failed requests resubmitted, dataplanes restarted for drivers that are ready, vCPUs released. */
    public void resume() {
        if (!loop.context().inHomeThread()) {
            watchdog(Duration.ofSeconds(120)).run("resume", this::resume);
            return;
        }
        if (!paused) {
            return;
        }
        for (Disk d : disks) {
            if (d.vhostUser() != null) {
                d.vhostUser().vhostStart(); // only if the driver is ready
                continue;
            }
            if (d.dataplane() != null && (d.device().status() & VirtioStatus.DRIVER_OK) != 0) {
                d.dataplane().startIoeventfd();
            }
            d.backend().resume(); // requests kept by a stopping error, resubmitted where the device now runs
        }
        paused = false;
        for (Vcpu v : vcpus) {
            v.resume();
        }
    }

    /**
     * Moves disk {@code i}'s queues to {@code iothreads} (round-robin), or to
     * the main loop when the list is empty, under whatever I/O the guest is
     * doing: the dataplane stops (nothing lost), remaps and starts again.
     */
    public void moveDisk(int i, List<String> iothreadNames) {
        Disk d = disks.get(i);
        if (d.dataplane() == null) {
            throw new IllegalStateException("disk " + i + " was created without a dataplane");
        }
        QueueMapping to = null;
        if (!iothreadNames.isEmpty()) {
            List<IOThread> ts = new ArrayList<>();
            for (String n : iothreadNames) {
                IOThread t = iothreads.get(n);
                if (t == null) {
                    throw new IllegalArgumentException("no IOThread named '" + n + "' (the machine has "
                            + iothreads.keySet() + ")");
                }
                ts.add(t);
            }
            to = QueueMapping.roundRobin(ts, d.device().numQueues());
        }
        QueueMapping target = to;
        watchdog(Duration.ofSeconds(120)).run("move disk " + i, () -> d.dataplane().move(target,
                (d.device().status() & VirtioStatus.DRIVER_OK) != 0));
    }

    /** Restarts the dataplane of disk {@code i} (a control-surface stop/start, not a VM pause). */
    public void restartDataplane(int i) {
        VirtioBlkDataplane dp = disks.get(i).dataplane();
        if (dp == null) {
            throw new IllegalStateException("disk " + i + " has no dataplane");
        }
        watchdog(Duration.ofSeconds(120)).run("dataplane stop/start", () -> {
            dp.stopIoeventfd();
            if ((disks.get(i).device().status() & VirtioStatus.DRIVER_OK) != 0) {
                dp.startIoeventfd();
            }
        });
    }

    /**
     * The device side of {@code device_del} for disk {@code i}, as QEMU runs
     * it when the guest did not reset the device first: stop its dataplane,
     * then {@link VirtioBlk#unrealize()} (drain the backend, tear the queues
     * down). vblk has no PCI hot-unplug: the function stays on the bus and
     * its disk stays in {@link #disks()}; the device answers nothing more.
     * Runs in the main loop (called from elsewhere, it waits for it there).
     */
    public void unrealizeDisk(int i) {
        Disk d = disks.get(i);
        if (d.device() == null) {
            throw new IllegalStateException("disk " + i + " is a vhost-user disk: its device is in the back-end");
        }
        if (!loop.context().inHomeThread()) {
            watchdog(Duration.ofSeconds(120)).run("unrealize disk " + i, () -> unrealizeDisk(i));
            return;
        }
        if (d.dataplane() != null) {
            d.dataplane().stopIoeventfd();
        }
        d.device().unrealize();
    }

    private void pauseForError() {
        LOG.warn("a disk stopped on an I/O error: pausing the machine");
        pause();
    }

    // ------------------------------------------------------------------ diagnostics and teardown

    public String describe() {
        StringBuilder sb = new StringBuilder();
        sb.append("machine: ").append(vcpus.length).append(" vCPUs, ").append(cfg.ramBytes() >> 20).append(" MiB, ")
                .append(paused ? "paused" : "running").append(", resets=").append(resets).append('\n');
        for (Vcpu v : vcpus) {
            sb.append(v.describe());
        }
        sb.append(irq.describe());
        for (Disk d : disks) {
            sb.append(d.transport().device().describe());
            sb.append(d.transport().describe());
            if (d.dataplane() != null) {
                sb.append("  ").append(d.dataplane().describe()).append('\n');
            }
        }
        return sb.toString();
    }

    /** The full hang report: every event loop, the machine, the devices. */
    public String dump() {
        return loop.dump();
    }

    /** Throws the watchdog's exception if {@code f} does not finish in {@code d}. */
    public <T> T await(String what, CompletableFuture<T> f, Duration d) {
        return watchdog(d).await(what, f);
    }

    @Override
    public void close() {
        for (MachinePlatform p : platforms) {
            if (p != null) {
                p.close();
            }
        }
        for (Vcpu v : vcpus) {
            if (v != null) {
                v.requestStop();
            }
        }
        try {
            loop.run("machine teardown", () -> {
                for (Disk d : disks) {
                    try {
                        if (d.dataplane() != null) {
                            d.dataplane().stopIoeventfd();
                        }
                        if (d.vhostUser() != null) {
                            d.vhostUser().vhostStop();
                            d.vhostUser().close();
                        }
                    } catch (RuntimeException e) {
                        LOG.debug("teardown: dataplane stop failed", e);
                    }
                }
                // close the disks (QEMU's bdrv_close_all at exit): a network disk releases what it holds in its
                // cluster (an RBD image's exclusive lock and watch), or the next client waits for it to time out
                for (Disk d : disks) {
                    if (d.backend() != null) {
                        try {
                            layer.removeBackend(d.backend());
                        } catch (RuntimeException e) {
                            LOG.debug("teardown: closing disk {} failed", d.slot(), e);
                        }
                    }
                }
            }).get(10, java.util.concurrent.TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.debug("teardown: main loop did not answer ({}); closing anyway", e.toString());
        }
        for (AutoCloseable c : diagnostics) {
            try {
                c.close();
            } catch (Exception e) {
                LOG.debug("removing diagnostics failed", e);
            }
        }
        layer.close();
        loop.close();
        for (Vcpu v : vcpus) {
            if (v != null) {
                v.close();
            }
        }
        irq.close();
        for (Disk d : disks) {
            // the function's eventfds (INTx, one per MSI-X vector; any ioeventfd a failed stop left assigned):
            // QEMU's event_notifier_cleanup as the device is unrealized. Last, once the vCPUs, the event loops
            // and the interrupt controller that waited on them are gone, so nothing signals or polls a closed fd.
            d.transport().close();
        }
        if (ram.regions().get(0).fd() >= 0) {
            ram.close(); // the shared memfd of a vhost-user machine: nothing of ours touches it any more
        }
    }
}
