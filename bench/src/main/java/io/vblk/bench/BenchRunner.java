package io.vblk.bench;

import io.vblk.aio.HangDetectedException;
import io.vblk.aio.IOThread;
import io.vblk.firmware.BootVerdict;
import io.vblk.guest.BootReport;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.virtio.blk.VirtioBlk;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.locks.LockSupport;

import org.HdrHistogram.Histogram;

/**
 * Runs one {@link BenchConfig}: prepares the image, starts the machine, boots
 * the firmware (which assigns the BARs), probes the Linux-like driver and has
 * one workload per queue — each on its own vCPU — keep {@code qd} requests in
 * flight. After the ramp it opens the measurement window: from then until the
 * runtime has passed, completions are recorded in one histogram per vCPU (no
 * allocation per request) and CPU time, kicks and interrupts are counted;
 * then the workloads stop issuing, drain, and the histograms are merged.
 *
 * <p>A progress line (elapsed, IOPS and MB/s over the last second) goes to
 * {@code progress} every second. A hang — a workload that does not drain, a
 * boot that does not finish — is a {@link HangDetectedException} carrying the
 * event-loop dump.
 */
public final class BenchRunner {
    private static final long SECOND = 1_000_000_000L;
    private static final Duration DRAIN_BOUND = Duration.ofSeconds(60);

    /** Where progress lines go; {@code live} rewrites one terminal line instead of printing one per second. */
    public record Progress(PrintWriter out, boolean live) {
        public static final Progress NONE = new Progress(null, false);
    }

    private final BenchConfig cfg;
    private final Progress progress;
    private final Path vhostUser;

    public BenchRunner(BenchConfig cfg, Progress progress) {
        this(cfg, progress, null);
    }

    /**
     * With {@code vhostUser} set, the machine's disk is a vhost-user-blk
     * front-end connected to that socket: the back-end (vblk serve,
     * qemu-storage-daemon) owns the image and its IOThreads, so the config's
     * backend, image and dataplane settings are not used; queues, queue depth,
     * block size, pattern and the vCPU side are.
     */
    public BenchRunner(BenchConfig cfg, Progress progress, Path vhostUser) {
        String problem = cfg.validate();
        if (problem != null) {
            throw new IllegalArgumentException(problem);
        }
        this.cfg = cfg;
        this.progress = progress == null ? Progress.NONE : progress;
        this.vhostUser = vhostUser;
    }

    private boolean dirtyLog;

    /**
     * With a vhost-user back-end: run with live-migration dirty logging on
     * (VHOST_F_LOG_ALL), to measure what logging costs the back-end.
     */
    public BenchRunner withDirtyLog(boolean on) {
        if (on && vhostUser == null) {
            throw new IllegalArgumentException("--dirty-log needs --vhost-user");
        }
        this.dirtyLog = on;
        return this;
    }

    /** Runs the benchmark; the image (if temporary) is removed afterwards. */
    public BenchResult run() {
        try (BenchImage img = prepareImage()) {
            return runOn(img);
        }
    }

    private BenchImage prepareImage() {
        if (vhostUser != null) {
            return null;
        }
        if (cfg.image() != null) {
            return BenchImage.existing(cfg.image(), cfg.format());
        }
        switch (cfg.backend()) {
            case FILE:
                say("preparing a " + Units.bytes(cfg.sizeBytes()) + " raw image (written and flushed) ...");
                return BenchImage.rawTemp(cfg.sizeBytes());
            case QCOW2:
                say("preparing a fully allocated " + Units.bytes(cfg.sizeBytes()) + " qcow2 image ...");
                return BenchImage.qcow2Temp(cfg.sizeBytes());
            default:
                return null;
        }
    }

    private MachineConfig machineConfig(BenchImage img) {
        if (vhostUser != null) {
            DiskSpec disk = DiskSpec.vhostUser(vhostUser).withQueues(cfg.queues()).withQueueSize(cfg.queueSize());
            return MachineConfig.of(cfg.vcpus(), 0, List.of(disk));
        }
        DiskSpec disk = img == null ? DiskSpec.nullDevice(cfg.sizeBytes()).withNullLatency(cfg.nullLatencyNs())
                : DiskSpec.image(img.path(), img.format());
        int nio = cfg.dataplane() ? cfg.iothreads() : 0;
        disk = disk.withQueues(cfg.queues()).withQueueSize(cfg.queueSize())
                .withIothreads(MachineConfig.iothreadNames(nio));
        return MachineConfig.of(cfg.vcpus(), nio, List.of(disk)).withPollMaxNs(cfg.pollMaxNs())
                .withFileOptions(cfg.fileOptions());
    }

    private BenchResult runOn(BenchImage img) {
        String startedAt = Instant.now().toString();
        try (Machine m = Machine.start(machineConfig(img))) {
            BootReport boot = m.boot();
            if (boot.verdict() == BootVerdict.HANG_AT_MBR_READ) {
                throw new HangDetectedException("firmware MBR read", Duration.ofNanos(boot.nanos()), boot.dump());
            }
            if (boot.verdict() == BootVerdict.NO_BOOT_DEVICE) {
                throw new IllegalStateException("the firmware found no usable virtio-blk device: " + boot.console());
            }
            LinuxGuest guest = LinuxGuest.probe(m, 0, cfg.queues(), cfg.queueSize(), true);
            if (dirtyLog) {
                m.mainLoop().watchdog(DRAIN_BOUND).run("dirty logging on",
                        () -> m.disk(0).vhostUser().setDirtyLogging(true));
                say("dirty logging on (VHOST_F_LOG_ALL): the back-end logs every page it writes");
            }
            if (guest.driver().numQueues() != cfg.queues()) {
                throw new IllegalStateException("the driver set up " + guest.driver().numQueues() + " queues, not "
                        + cfg.queues());
            }
            BenchResult r = measure(m, guest, startedAt);
            if (vhostUser != null) {
                io.vblk.vhost.VhostUserBlkFrontend f = m.disk(0).vhostUser();
                say(String.format("vhost-user back-end: %d reconnect(s), longest stall %.1f ms", f.reconnects(),
                        f.longestStallNanos() / 1e6));
            }
            return r;
        }
    }

    private BenchResult measure(Machine m, LinuxGuest guest, String startedAt) {
        int nq = cfg.queues();
        LatencyRecorder.Gate gate = new LatencyRecorder.Gate();
        LatencyRecorder[] rec = new LatencyRecorder[nq];
        for (int q = 0; q < nq; q++) {
            rec[q] = new LatencyRecorder(gate);
        }
        Set<String> ioNames = new HashSet<>();
        for (IOThread t : m.iothreads()) {
            ioNames.add(t.name());
        }
        CpuAccounting cpu = new CpuAccounting(ioNames);
        GuestWorkload.Spec spec = new GuestWorkload.Spec(cfg.queueDepth(), cfg.blockSize(), cfg.pattern(),
                cfg.verify(), cfg.guestPoll());
        VirtioBlk dev = m.disk(0).device();
        Histogram stopStart = new Histogram(1, 3_600_000_000_000L, 3);

        Stop stop = new Stop();
        LinuxGuest.Run run = guest.start(spec, stop::get, rec, cfg.seed());
        long t0 = System.nanoTime();
        long rampEnd = t0 + cfg.rampNs();
        long windowStart = 0;
        long windowEnd = Long.MAX_VALUE;
        Counters before = null;
        Counters after = null;
        CpuAccounting.Snapshot cpuBefore = null;
        CpuAccounting.Snapshot cpuAfter = null;
        long nextTick = t0 + SECOND;
        long lastCompleted = 0;
        long lastTick = t0;
        try {
            if (cfg.rampNs() == 0) {
                before = counters(m, guest, run, dev);
                cpuBefore = cpu.snapshot();
                gate.open();
                windowStart = System.nanoTime();
                windowEnd = windowStart + cfg.runtimeNs();
            }
            for (;;) {
                if (anyFailed(run)) {
                    break; // a workload ended early (error, stop): collect below, which reports why
                }
                long now = System.nanoTime();
                if (windowStart == 0 && now >= rampEnd) {
                    before = counters(m, guest, run, dev);
                    cpuBefore = cpu.snapshot();
                    gate.open();
                    windowStart = System.nanoTime();
                    windowEnd = windowStart + cfg.runtimeNs();
                    now = windowStart;
                }
                if (windowStart != 0 && now >= windowEnd) {
                    gate.close();
                    long end = System.nanoTime();
                    cpuAfter = cpu.snapshot();
                    after = counters(m, guest, run, dev);
                    windowEnd = end;
                    break;
                }
                if (now >= nextTick) {
                    long c = run.completed();
                    tick(now - t0, c - lastCompleted, now - lastTick, windowStart == 0);
                    lastCompleted = c;
                    lastTick = now;
                    nextTick += SECOND;
                    if (nextTick <= now) {
                        nextTick = now + SECOND;
                    }
                    continue;
                }
                if (cfg.stopStart() && windowStart != 0) {
                    long s = System.nanoTime();
                    m.restartDataplane(0);
                    stopStart.recordValue(Math.max(1, System.nanoTime() - s));
                    continue;
                }
                long target = Math.min(nextTick, windowStart == 0 ? rampEnd : windowEnd);
                LockSupport.parkNanos(Math.max(1, target - now));
            }
        } finally {
            stop.set();
            gate.close();
            if (progress.out() != null && progress.live()) {
                progress.out().print("\r\033[K");
                progress.out().flush();
            }
        }
        for (CompletableFuture<Void> f : run.done()) {
            m.await("the guest workloads to drain after the run", f, DRAIN_BOUND);
        }
        if (after == null) {
            // a workload ended before the window closed: report what it said
            String why = run.firstProblem();
            throw new IllegalStateException("a guest workload ended during the run"
                    + (why != null ? ": " + why : ""));
        }
        List<LatencyRecorder> recs = List.of(rec);
        Histogram h = LatencyRecorder.merge(recs);
        long requests = 0;
        long clamped = 0;
        for (LatencyRecorder r : rec) {
            requests += r.count();
            clamped += r.clamped();
        }
        long errors = 0;
        long mismatches = 0;
        for (GuestWorkload w : run.workloads()) {
            errors += w.stats.errors;
            mismatches += w.stats.mismatches;
        }
        CpuAccounting.Usage usage = CpuAccounting.between(cpuBefore, cpuAfter);
        return new BenchResult(cfg, requests, windowEnd - windowStart, requests * cfg.blockSize(),
                h.getTotalCount() == 0 ? 0 : h.getMean(), q(h, 50), q(h, 99), q(h, 99.9),
                h.getTotalCount() == 0 ? 0 : h.getMinValue(), h.getTotalCount() == 0 ? 0 : h.getMaxValue(), usage,
                after.kicks - before.kicks, after.interrupts - before.interrupts, after.signals - before.signals,
                after.wakeups - before.wakeups, after.polls - before.polls, errors, mismatches, run.firstProblem(),
                stopStart.getTotalCount(), q(stopStart, 50), q(stopStart, 99), clamped, startedAt);
    }

    private static long q(Histogram h, double pct) {
        return h.getTotalCount() == 0 ? 0 : h.getValueAtPercentile(pct);
    }

    private static boolean anyFailed(LinuxGuest.Run run) {
        for (CompletableFuture<Void> f : run.done()) {
            if (f.isDone()) {
                return true;
            }
        }
        return false;
    }

    /** The stop signal of the workloads. */
    private static final class Stop {
        private volatile boolean stop;

        boolean get() {
            return stop;
        }

        void set() {
            stop = true;
        }
    }

    /** Guest and device counters at one instant (racy reads of single-writer statistics). */
    private record Counters(long kicks, long interrupts, long signals, long wakeups, long polls) {
    }

    private static Counters counters(Machine m, LinuxGuest guest, LinuxGuest.Run run, VirtioBlk dev) {
        long kicks = 0;
        long irqs = 0;
        long signals = 0;
        for (int q = 0; q < run.workloads().size(); q++) {
            kicks += guest.driver().queue(q).kicks();
            irqs += run.workloads().get(q).stats.interrupts;
            signals += dev == null ? 0 : dev.queue(q).signals(); // a vhost-user back-end counts its own
        }
        long wakeups = 0;
        long polls = 0;
        for (IOThread t : m.iothreads()) {
            wakeups += t.context().eventfdWrites();
            polls += t.context().pollCount();
        }
        return new Counters(kicks, irqs, signals, wakeups, polls);
    }

    private void tick(long elapsedNs, long completed, long intervalNs, boolean ramp) {
        PrintWriter out = progress.out();
        if (out == null) {
            return;
        }
        double iops = completed * 1e9 / intervalNs;
        String line = String.format(Locale.ROOT, "vblk bench: %4.0fs%s %10.0f IOPS %12s", elapsedNs / 1e9,
                ramp ? " (ramp)" : "       ", iops, BenchResult.rate(iops * cfg.blockSize()));
        if (progress.live()) {
            out.print("\r\033[K" + line);
        } else {
            out.println(line);
        }
        out.flush();
    }

    private void say(String s) {
        PrintWriter out = progress.out();
        if (out != null) {
            out.println("vblk bench: " + s);
            out.flush();
        }
    }

    /** The histogram precision used by {@link LatencyRecorder} (for reports). */
    public static List<String> describeMethod() {
        List<String> l = new ArrayList<>();
        l.add("latency: guest-side, from the request's submit to its reap, HdrHistogram with "
                + LatencyRecorder.SIGNIFICANT_DIGITS + " significant digits, one per vCPU, merged");
        return l;
    }
}
