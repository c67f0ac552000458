package io.vblk.cli;

import io.vblk.aio.HangDetectedException;
import io.vblk.block.BlockException;
import io.vblk.firmware.BootVerdict;
import io.vblk.guest.BootReport;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.IoPattern;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.job.BlockJobs;
import io.vblk.job.Job;
import io.vblk.job.JobOptions;
import io.vblk.job.JobStatus;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code vblk boot}: boots the simulated machine — SeaBIOS-like firmware
 * reads the MBR through virtio-blk — then stresses the transitions users
 * care about: dataplane stop/start under guest I/O, and system resets each
 * followed by a fresh boot. With {@code --job} a block job (stream, commit or
 * mirror) runs on the boot disk through the boot/reset loop, on temporary
 * qcow2 overlays above the image (which stays untouched): a READY job is
 * completed halfway through the resets, and the last boot reads the MBR from
 * the job's result. Exit 0 only if every boot read a valid MBR, the job (if
 * any) succeeded and no hang was detected; a hang exits 3 with the
 * watchdog's dump.
 */
@Command(name = "boot", mixinStandardHelpOptions = true,
        description = "Boot the simulated machine: SeaBIOS-like firmware reads the MBR through virtio-blk.",
        footer = {"", "Exit status: 0 every boot read a valid MBR and nothing hung; 1 a boot failed;",
                "2 bad usage or image; 3 a hang was detected (the event-loop dump is printed)."})
final class BootCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--image", paramLabel = "FILE",
            description = "Disk image to boot (opened read-only). Default: a generated 64 MiB disk with a valid MBR.")
    Path image;

    @Option(names = "--format", paramLabel = "FMT", description = "Image format (raw, qcow2); probed when omitted.")
    String format;

    @Option(names = "--iothreads", paramLabel = "N", defaultValue = "1",
            description = "IOThreads serving the disk's queues (default ${DEFAULT-VALUE}).")
    int iothreads;

    @Option(names = "--dataplane", paramLabel = "on|off", defaultValue = "on",
            description = "Serve the queues from IOThreads (on) or the main loop (off). Default ${DEFAULT-VALUE}.")
    String dataplane;

    @Option(names = "--vcpus", paramLabel = "N", defaultValue = "1", description = "vCPUs (default ${DEFAULT-VALUE}).")
    int vcpus;

    @Option(names = "--resets", paramLabel = "K", defaultValue = "0",
            description = "System resets to perform, each followed by a fresh boot (default ${DEFAULT-VALUE}).")
    int resets;

    @Option(names = "--stop-start", paramLabel = "K", defaultValue = "0",
            description = "Dataplane stop/start cycles under guest I/O (default ${DEFAULT-VALUE}).")
    int stopStarts;

    @Option(names = "--quiet", description = "Print only the summary.")
    boolean quiet;

    @Option(names = "--job", paramLabel = "stream|commit|mirror",
            description = {"Run a block job on the boot disk during the boot/reset loop, on temporary qcow2 overlays "
                    + "above the image: stream (image <- top: copy the image into top), commit (image <- mid <- top: "
                    + "commit top into mid, the device then uses mid) or mirror (top to a new image, the device then "
                    + "uses it)."})
    String job;

    @Option(names = "--job-speed", paramLabel = "BYTES/S", defaultValue = "0",
            description = "Speed limit of the job in bytes per second (0: unlimited, the default).")
    long jobSpeed;

    @Option(names = "--vhost-user", paramLabel = "SOCK",
            description = "Boot from a vhost-user-blk back-end listening on SOCK (vblk serve, qemu-storage-daemon) "
                    + "instead of an image; guest RAM is then shared memory.")
    Path vhostUser;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        String problem = validate();
        if (problem != null) {
            err.println("vblk boot: " + problem);
            return Main.EXIT_USAGE;
        }
        Path disk;
        Path temp = null;
        try {
            if (image == null && vhostUser == null) {
                temp = Files.createTempFile("vblk-default-", ".raw");
                disk = DefaultDisk.create(temp, DefaultDisk.DEFAULT_SIZE);
            } else {
                disk = image;
            }
        } catch (IOException e) {
            err.println("vblk boot: cannot create the default disk: " + e.getMessage());
            return Main.EXIT_FAILED;
        }
        try {
            return run(disk, out, err);
        } finally {
            if (temp != null) {
                try {
                    Files.deleteIfExists(temp);
                } catch (IOException e) {
                    err.println("vblk boot: could not remove " + temp + ": " + e.getMessage());
                }
            }
        }
    }

    private String validate() {
        if (!dataplane.equals("on") && !dataplane.equals("off")) {
            return "--dataplane must be 'on' or 'off', not '" + dataplane + "'";
        }
        if (iothreads < 0 || iothreads > 16) {
            return "--iothreads must be 0..16, not " + iothreads;
        }
        if (dataplane.equals("on") && iothreads == 0) {
            return "--dataplane on needs at least one IOThread (--iothreads N)";
        }
        if (vcpus < 1 || vcpus > 64) {
            return "--vcpus must be 1..64, not " + vcpus;
        }
        if (resets < 0 || stopStarts < 0) {
            return "--resets and --stop-start must not be negative";
        }
        if (stopStarts > 0 && dataplane.equals("off")) {
            return "--stop-start needs the dataplane (--dataplane on)";
        }
        if (job != null && !job.equals("stream") && !job.equals("commit") && !job.equals("mirror")) {
            return "--job must be 'stream', 'commit' or 'mirror', not '" + job + "'";
        }
        if (jobSpeed < 0) {
            return "--job-speed must not be negative";
        }
        if (vhostUser != null && job != null) {
            return "--job runs on images of this process; with --vhost-user the back-end owns the disk";
        }
        if (vhostUser != null && (image != null || format != null || stopStarts > 0)) {
            return "--vhost-user serves the disk from the back-end: --image, --format and --stop-start do not apply";
        }
        if (image != null) {
            return ImageChecks.check(image);
        }
        return null;
    }

    private int run(Path disk, PrintWriter out, PrintWriter err) {
        if (job == null) {
            return run(disk, null, out, err);
        }
        Path dir = null;
        try {
            dir = Files.createTempDirectory("vblk-job-");
            JobChain chain = JobChain.create(dir, disk, format, job);
            return run(disk, chain, out, err);
        } catch (IOException | BlockException e) {
            err.println("vblk boot: cannot prepare the images for --job " + job + ": " + e.getMessage());
            return Main.EXIT_FAILED;
        } finally {
            if (dir != null) {
                JobChain.deleteTree(dir);
            }
        }
    }

    private int run(Path disk, JobChain chain, PrintWriter out, PrintWriter err) {
        boolean dp = dataplane.equals("on");
        DiskSpec spec0 = (vhostUser != null ? DiskSpec.vhostUser(vhostUser)
                : chain == null ? DiskSpec.image(disk, format).withReadOnly(true)
                : DiskSpec.image(chain.top(), "qcow2"))
                .withIothreads(dp ? MachineConfig.iothreadNames(iothreads) : List.of());
        Durations resetTimes = new Durations();
        Durations bootTimes = new Durations();
        Durations stopStartTimes = new Durations();
        int boots = 0;
        int badBoots = 0;
        Trouble trouble = null;
        Machine m;
        try {
            m = Machine.start(MachineConfig.of(vcpus, iothreads, List.of(spec0)));
        } catch (BlockException | IllegalArgumentException e) {
            err.println("vblk boot: " + e.getMessage());
            return Main.EXIT_USAGE;
        }
        BlockJobs jobs = null;
        Job running = null;
        String jobOutcome = null;
        boolean jobFailed = false;
        try (m) {
            if (chain != null) {
                jobs = new BlockJobs(m.blockLayer());
                chain.seed(m);
            }
            if (!quiet) {
                m.console().setListener(out::println);
            }
            BootReport first = m.boot();
            boots++;
            bootTimes.add(first.nanos());
            m.console().setListener(null);
            if (!first.ok()) {
                badBoots++;
                trouble = report(first, !quiet, err);
            }
            if (trouble == null && chain != null) {
                running = chain.start(m, jobs, JobOptions.defaults().withSpeed(jobSpeed).withAutoFinalize(false));
                if (!quiet) {
                    out.printf("vblk: %s job '%s' started%n", running.type(), running.id());
                }
            }
            if (trouble == null && stopStarts > 0) {
                trouble = stopStartUnderIo(m, stopStartTimes, out, err);
            }
            long lastProgress = System.nanoTime();
            for (int i = 0; trouble == null && i < resets; i++) {
                long t0 = System.nanoTime();
                CompletableFuture<BootVerdict> booting = m.systemReset();
                resetTimes.add(System.nanoTime() - t0);
                BootReport r = m.awaitBoot(booting);
                boots++;
                bootTimes.add(r.nanos());
                if (!r.ok()) {
                    badBoots++;
                    trouble = report(r, false, err);
                    break;
                }
                if (running != null) {
                    advanceJob(m, jobs, running, 2 * (i + 1) >= resets);
                }
                if (!quiet && System.nanoTime() - lastProgress > 1_000_000_000L) {
                    out.printf("vblk: reset %d/%d, all boots OK so far%s%n", i + 1, resets,
                            running == null ? "" : "; job " + running.id() + " " + running.status().qmpName() + " "
                                    + percent(running));
                    out.flush();
                    lastProgress = System.nanoTime();
                }
            }
            if (trouble == null && running != null) {
                jobOutcome = finishJob(m, jobs, running, chain, out);
                jobFailed = running.ret() != 0 || jobOutcome.startsWith("failed");
                if (!jobFailed) {
                    BootReport last = m.awaitBoot(m.systemReset()); // the job's result boots
                    boots++;
                    bootTimes.add(last.nanos());
                    if (!last.ok()) {
                        badBoots++;
                        trouble = report(last, false, err);
                    }
                }
            }
        } catch (HangDetectedException e) {
            trouble = Trouble.hang(e.getMessage());
            err.println("vblk boot: " + e.getMessage());
        }
        out.println();
        out.printf("%-22s %s%n", "boots", boots + (badBoots == 0 ? " (all MBR OK)"
                : " (" + badBoots + " failed" + (trouble != null && !trouble.hang() ? ": " + trouble.what() : "") + ")"));
        out.printf("%-22s %d%n", "resets", resetTimes.count());
        out.printf("%-22s %d%n", "dataplane stop/starts", stopStartTimes.count());
        out.printf("%-22s %s%n", "boot median / p99", bootTimes.medianP99());
        out.printf("%-22s %s%n", "reset median / p99", resetTimes.medianP99());
        out.printf("%-22s %s%n", "stop/start median/p99", stopStartTimes.medianP99());
        if (chain != null) {
            out.printf("%-22s %s%n", "job", jobOutcome != null ? jobOutcome
                    : running == null ? "not started" : running.id() + " " + running.status().qmpName());
        }
        out.printf("%-22s %d%n", "hangs detected", trouble != null && trouble.hang() ? 1 : 0);
        out.flush();
        if (trouble != null) {
            return trouble.hang() ? Main.EXIT_HANG : Main.EXIT_FAILED;
        }
        if (jobFailed) {
            err.println("vblk boot: the " + job + " job failed: " + jobOutcome);
            return Main.EXIT_FAILED;
        }
        return badBoots == 0 ? 0 : Main.EXIT_FAILED;
    }

    private static String percent(Job j) {
        long t = j.progressTotal();
        return t <= 0 ? "" : String.format("%.0f%%", 100.0 * j.progressCurrent() / t);
    }

    /**
     * Between boots — the firmware is done, nothing else runs in the main
     * loop — completes a READY job (once {@code complete} is due) and
     * finalizes a PENDING one, waiting for the pivot. Jobs run with
     * auto-finalize off so their graph changes happen here, never in a nested
     * poll of a reset or of the firmware's device accesses (the Machine runs
     * those as main-loop BHs, where QEMU's BQL would keep them out).
     */
    private static void advanceJob(Machine m, BlockJobs jobs, Job j, boolean completeDue) {
        Duration bound = Duration.ofSeconds(300);
        if (completeDue && j.status() == JobStatus.READY) {
            m.watchdog(Duration.ofSeconds(60)).run("block-job-complete", () -> {
                if (j.status() == JobStatus.READY) {
                    jobs.complete(j.id());
                }
            });
            m.await(j.id() + " run ended", j.settled(), bound);
        }
        if (j.status() == JobStatus.PENDING) {
            m.watchdog(bound).run("block-job-finalize", () -> jobs.finalizeJob(j.id()));
        }
        if (j.settled().isDone()) {
            m.await(j.id() + " concluded", j.concluded(), bound);
        }
    }

    /** Completes and finalizes the job, waits for it to conclude, checks its data; returns the summary line. */
    private String finishJob(Machine m, BlockJobs jobs, Job j, JobChain chain, PrintWriter out) {
        Duration bound = Duration.ofSeconds(300);
        if (!j.settled().isDone() && (j.type().equals("mirror") || (j.type().equals("commit") && chain.active()))) {
            m.await(j.id() + " ready", j.ready(), bound);
        }
        if (!j.settled().isDone()) {
            if (j.status() == JobStatus.READY) {
                advanceJob(m, jobs, j, true);
            } else {
                m.await(j.id() + " run ended", j.settled(), bound);
            }
        }
        advanceJob(m, jobs, j, true);
        int ret = m.await(j.id() + " concluded", j.concluded(), bound);
        if (ret != 0) {
            return "failed: " + j.id() + " (" + j.type() + "): " + j.error();
        }
        String device = m.watchdog(Duration.ofSeconds(60)).call("device node", () -> m.disk(0).backend().root().name());
        String problem = chain.verify(m);
        if (problem != null) {
            return "failed: " + j.id() + " concluded but " + problem;
        }
        return String.format("%s (%s) concluded OK (%d MiB processed), device on '%s'", j.id(), j.type(),
                j.progressCurrent() >> 20, device);
    }

    /**
     * Why the run stopped early: a hang (a watchdog or the firmware's MBR-read
     * timeout saw a wait that never ended; exit 3) or a failure that is not a
     * hang (a boot that read no valid MBR, guest I/O that failed; exit 1). Kept
     * apart so the summary's "hangs detected" counts only hangs.
     */
    private record Trouble(boolean hang, String what) {
        static Trouble hang(String what) {
            return new Trouble(true, what);
        }

        static Trouble failure(String what) {
            return new Trouble(false, what);
        }
    }

    /**
     * A failed boot: the firmware's console is printed unless it was already
     * shown live, a hang's dump is printed; a failure's reason goes into the
     * summary's boots line.
     */
    private static Trouble report(BootReport r, boolean consoleShown, PrintWriter err) {
        if (!consoleShown) {
            for (String line : r.console()) {
                err.println("  " + line);
            }
        }
        if (r.verdict() == BootVerdict.HANG_AT_MBR_READ) {
            err.println("vblk boot: hang at MBR read detected by the firmware; event-loop dump:");
            err.println(r.dump());
            return Trouble.hang("hang at MBR read");
        }
        return Trouble.failure(describe(r.verdict())); // the summary says it, once
    }

    private static String describe(BootVerdict v) {
        return switch (v) {
            case NO_BOOT_SIGNATURE -> "the MBR has no boot signature (0x55AA)";
            case NO_BOOT_DEVICE -> "no virtio-blk boot device could be initialised";
            case READ_ERROR -> "the device reported an error reading the MBR";
            default -> v.name();
        };
    }

    /** Dataplane stop/start cycles while the Linux-like driver reads; any lost request would show as a hang. */
    private Trouble stopStartUnderIo(Machine m, Durations times, PrintWriter out, PrintWriter err) {
        LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
        GuestWorkload.Spec spec = new GuestWorkload.Spec(8, 4096, IoPattern.parse("randread"), false, false);
        AtomicBoolean stop = new AtomicBoolean();
        LinuxGuest.Run run = g.start(spec, stop::get, null, 1);
        long lastProgress = System.nanoTime();
        for (int i = 0; i < stopStarts; i++) {
            long t0 = System.nanoTime();
            m.restartDataplane(0);
            times.add(System.nanoTime() - t0);
            if (!quiet && System.nanoTime() - lastProgress > 1_000_000_000L) {
                out.printf("vblk: dataplane stop/start %d/%d, %d guest requests completed%n", i + 1, stopStarts,
                        run.completed());
                out.flush();
                lastProgress = System.nanoTime();
            }
        }
        stop.set(true);
        for (CompletableFuture<Void> f : run.done()) {
            m.await("guest I/O after the stop/starts", f, Duration.ofSeconds(60));
        }
        if (run.firstProblem() != null) {
            err.println("vblk boot: guest I/O failed during the stop/starts: " + run.firstProblem());
            return Trouble.failure("guest I/O failed during the dataplane stop/starts");
        }
        return null;
    }
}
