package io.vblk.cli;

import io.vblk.aio.HangDetectedException;
import io.vblk.bench.BenchConfig;
import io.vblk.bench.BenchReport;
import io.vblk.bench.BenchResult;
import io.vblk.bench.BenchRunner;
import io.vblk.bench.HtmlReport;
import io.vblk.bench.Sweep;
import io.vblk.bench.Units;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.qcow2.Qcow2;
import io.vblk.guest.IoPattern;
import io.vblk.vhost.VhostUserException;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code vblk bench}: boots the simulated machine, has the Linux-like driver
 * keep {@code --qd} requests in flight on each queue (one vCPU per queue) and
 * measures throughput, latency, CPU and notifications, fio-style. With
 * {@code --sweep} it runs a grid and writes a self-contained HTML report.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Measure I/O through the full device path: guest driver -> kick -> IOThread -> backend -> "
                + "used ring -> interrupt.",
                "Prints a progress line every second, then IOPS, bandwidth, latency percentiles, CPU by thread kind "
                        + "and notifications per request."},
        footer = {"", "Sizes take k, m, g suffixes (4k, 64k, 1g); durations s, ms, m (10s, 500ms).",
                "Example sweep: vblk bench --runtime 5s --sweep iothreads=1,2 qd=1,8,32,128",
                "", "Exit status: 0 ok; 1 the run failed (I/O errors, a --verify mismatch); 2 bad usage;",
                "3 a hang was detected (the event-loop dump is printed)."})
final class BenchCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @picocli.CommandLine.Mixin
    FileOptionsMixin file = new FileOptionsMixin();

    @Option(names = "--iothreads", paramLabel = "N", defaultValue = "1",
            description = "IOThreads serving the queues, round-robin (default ${DEFAULT-VALUE}).")
    String iothreads;

    @Option(names = "--queues", paramLabel = "Q", defaultValue = "1",
            description = "Virtqueues, each driven by its own vCPU (default ${DEFAULT-VALUE}).")
    String queues;

    @Option(names = "--qd", paramLabel = "D", defaultValue = "32",
            description = "Requests kept in flight per queue (default ${DEFAULT-VALUE}).")
    String qd;

    @Option(names = "--bs", paramLabel = "SIZE", defaultValue = "4k",
            description = "Request size (default ${DEFAULT-VALUE}).")
    String bs;

    @Option(names = "--rw", paramLabel = "PATTERN", defaultValue = "randread",
            description = "randread, randwrite, read, write, randrw or randrw:PCT (reads %%; default ${DEFAULT-VALUE}).")
    String rw;

    @Option(names = "--backend", paramLabel = "null|file|qcow2|rbd:...", defaultValue = "null",
            description = "null (reads zeroes, discards writes), file (raw) or qcow2; file and qcow2 use a "
                    + "temporary, fully written image unless --image is given; rbd:pool/image[:conf=FILE] runs on "
                    + "that existing RBD image, raw (default ${DEFAULT-VALUE}).")
    String backend;

    @Option(names = "--image", paramLabel = "FILE", description = "Image to run on (file or qcow2 backend). "
            + "Writes go to it. With --verify, blocks the run did not write must read as zeroes.")
    Path image;

    @Option(names = "--format", paramLabel = "FMT", description = "Format of --image (raw, qcow2); probed when omitted.")
    String format;

    @Option(names = "--size", paramLabel = "SIZE", defaultValue = "1g",
            description = "Disk size of the null device or temporary image (default ${DEFAULT-VALUE}).")
    String size;

    @Option(names = "--runtime", paramLabel = "DURATION", defaultValue = "10s",
            description = "Measurement window after the ramp (default ${DEFAULT-VALUE}).")
    String runtime;

    @Option(names = "--ramp", paramLabel = "DURATION", defaultValue = "2s",
            description = "Warm-up before measuring; its completions are not counted (default ${DEFAULT-VALUE}).")
    String ramp;

    @Option(names = "--dataplane", paramLabel = "on|off", defaultValue = "on",
            description = "Serve the queues from IOThreads (on) or the main loop (off). Default ${DEFAULT-VALUE}.")
    String dataplane;

    @Option(names = "--guest-poll", paramLabel = "on|off", defaultValue = "off",
            description = "The vCPU spins on the used ring with interrupts off instead of waiting for the irqfd "
                    + "(default ${DEFAULT-VALUE}).")
    String guestPoll;

    @Option(names = "--poll-max-ns", paramLabel = "NS", defaultValue = "32768",
            description = "Adaptive polling bound of the IOThreads; 0 turns polling off (default ${DEFAULT-VALUE}).")
    String pollMaxNs;

    @Option(names = "--null-latency", paramLabel = "DURATION", defaultValue = "0",
            description = "Fixed completion latency of the null backend, e.g. 100us (default none).")
    String nullLatency;

    @Option(names = "--verify", description = "Check every read (each slot writes a pattern with its LBA and a "
            + "generation); a mismatch fails the run. Needs a file or qcow2 backend.")
    boolean verify;

    @Option(names = "--stop-start", description = "Cycle the dataplane stop+start back to back during the "
            + "measurement and report the cycle time (median, p99).")
    boolean stopStart;

    @Option(names = "--json", paramLabel = "FILE", description = "Also write the results as JSON (an array for a sweep).")
    Path json;

    @Option(names = "--sweep", paramLabel = "KEY=V1,V2", arity = "1..*",
            description = "Run the grid of the given values (keys: iothreads, queues, qd, bs, rw, backend, "
                    + "dataplane, guest-poll, poll-max-ns); the last key is "
                    + "the chart's x axis. Writes --report.")
    List<String> sweep;

    @Option(names = "--report", paramLabel = "FILE", defaultValue = "bench-report.html",
            description = "Where --sweep writes its HTML report (default ${DEFAULT-VALUE}).")
    Path report;

    @Option(names = "--quiet", description = "No progress lines; only the final table.")
    boolean quiet;

    @Option(names = "--vhost-user", paramLabel = "SOCK",
            description = {"Measure a vhost-user-blk back-end listening on SOCK (vblk serve, qemu-storage-daemon) "
                    + "from the same simulated guest. The back-end owns the disk and its IOThreads: --backend, "
                    + "--image, --format, --size, --null-latency, --stop-start and --verify do not apply, and "
                    + "--iothreads, --dataplane and --poll-max-ns are the back-end's own settings."})
    Path vhostUser;

    @Option(names = "--dirty-log", description = {"With --vhost-user: turn the back-end's live-migration dirty "
            + "logging on (VHOST_F_LOG_ALL, a bitmap shared with SET_LOG_BASE) before measuring, to see its cost."})
    boolean dirtyLog;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        BenchConfig base;
        List<BenchConfig> grid;
        Sweep sw = null;
        try {
            base = parse();
            checkVhostUser();
            if (sweep != null) {
                sw = Sweep.parse(sweep);
                grid = sw.expand(base);
            } else {
                String problem = base.validate();
                if (problem != null) {
                    throw new IllegalArgumentException(problem);
                }
                grid = List.of(base);
            }
        } catch (IllegalArgumentException e) {
            err.println("vblk bench: " + e.getMessage());
            return Main.EXIT_USAGE;
        }
        List<BenchResult> results = new ArrayList<>();
        boolean live = !quiet && System.console() != null;
        BenchRunner.Progress progress = quiet ? BenchRunner.Progress.NONE : new BenchRunner.Progress(out, live);
        int i = 0;
        for (BenchConfig c : grid) {
            i++;
            if (sw != null) {
                out.printf("%nvblk bench: sweep point %d/%d: %s%n", i, grid.size(),
                        Sweep.label(c, new ArrayList<>(sw.axes().keySet())));
                out.flush();
            }
            BenchResult r;
            try {
                r = new BenchRunner(c, progress, vhostUser).withDirtyLog(dirtyLog).run();
            } catch (HangDetectedException e) {
                err.println("vblk bench: " + e.getMessage());
                return Main.EXIT_HANG;
            } catch (BlockException e) {
                err.println("vblk bench: " + e.getMessage());
                return Main.EXIT_USAGE;
            } catch (VhostUserException e) {
                err.println("vblk bench: vhost-user back-end at '" + vhostUser + "': " + e.getMessage());
                return Main.EXIT_FAILED;
            }
            results.add(r);
            BenchReport.table(r, out);
            if (!r.ok()) {
                err.println("vblk bench: the run failed: " + r.firstProblem()
                        + (c.verify() && c.image() != null ? " (with --image, blocks this run did not write must "
                        + "read as zeroes)" : ""));
                writeOutputs(sw, base, results, out, err);
                return Main.EXIT_FAILED;
            }
        }
        return writeOutputs(sw, base, results, out, err) ? 0 : Main.EXIT_FAILED;
    }

    private boolean writeOutputs(Sweep sw, BenchConfig base, List<BenchResult> results, PrintWriter out,
                                 PrintWriter err) {
        try {
            if (json != null) {
                Files.writeString(json, BenchReport.json(results), StandardCharsets.UTF_8);
                out.println("vblk bench: wrote " + json);
            }
            if (sw != null && !results.isEmpty()) {
                Files.writeString(report, HtmlReport.render(sw, base, results, commandLine(), machine()),
                        StandardCharsets.UTF_8);
                out.println("vblk bench: wrote " + report);
            }
            out.flush();
            return true;
        } catch (IOException e) {
            err.println("vblk bench: cannot write the results: " + e.getMessage());
            return false;
        }
    }

    private BenchConfig parse() {
        BenchConfig d = BenchConfig.defaults();
        boolean dp = Units.parseOnOff("dataplane", dataplane);
        int nio = Units.parseInt("iothreads", iothreads);
        Path img = image;
        String fmt = format;
        if (BlockLayer.findProtocol(backend) != null) { // --backend rbd:pool/image: a protocol's image, raw
            if (image != null) {
                throw new IllegalArgumentException("--backend " + backend + " names the image: drop --image");
            }
            img = Path.of(backend);
            fmt = "raw";
        }
        BenchConfig.Backend be = img != image ? BenchConfig.Backend.FILE : BenchConfig.Backend.parse(backend);
        if (image != null && BlockLayer.findProtocol(image.toString()) != null) {
            be = BenchConfig.Backend.FILE;
            fmt = format == null ? "raw" : format;
        } else if (image != null) {
            if (!Files.isRegularFile(image)) {
                throw new IllegalArgumentException("--image '" + image + "' is not an existing file");
            }
            if (be == BenchConfig.Backend.NULL) {
                be = "qcow2".equals(format) || (format == null && Qcow2.hasMagic(image)) ? BenchConfig.Backend.QCOW2
                        : BenchConfig.Backend.FILE;
            }
        }
        if (format != null && !format.equals("raw") && !format.equals("qcow2")) {
            throw new IllegalArgumentException("--format must be raw or qcow2, not '" + format + "'");
        }
        IoPattern pattern;
        try {
            pattern = IoPattern.parse(rw);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--rw: " + e.getMessage());
        }
        long bsBytes = Units.parseBytes("bs", bs);
        return new BenchConfig(nio, Units.parseInt("queues", queues), Units.parseInt("qd", qd),
                (int) Math.min(Integer.MAX_VALUE, bsBytes), pattern, be, img,
                img != null && fmt == null && be == BenchConfig.Backend.QCOW2 ? "qcow2" : fmt,
                Units.parseBytes("size", size), Units.parseDurationNs("runtime", runtime),
                Units.parseDurationNs("ramp", ramp), dp, Units.parseOnOff("guest-poll", guestPoll),
                Units.parseLong("poll-max-ns", pollMaxNs), verify, d.seed(),
                Units.parseDurationNs("null-latency", nullLatency), stopStart, file.options());
    }

    /** Options that describe the disk or its serving side belong to the back-end with --vhost-user. */
    private void checkVhostUser() {
        if (vhostUser == null) {
            return;
        }
        for (String o : List.of("--backend", "--image", "--format", "--size", "--null-latency", "--stop-start", "--aio",
                "--cache-direct", "--cache-no-flush", "--discard", "--detect-zeroes", "--locking",
                "--verify", "--iothreads", "--dataplane", "--poll-max-ns")) {
            if (spec.commandLine().getParseResult().hasMatchedOption(o)) {
                throw new IllegalArgumentException(o + " does not apply with --vhost-user: the back-end at '"
                        + vhostUser + "' owns the disk and how it is served");
            }
        }
        if (sweep != null && String.join(" ", sweep).matches(".*\\b(iothreads|dataplane|backend|poll-max-ns)=.*")) {
            throw new IllegalArgumentException("--sweep over the back-end's settings does not apply with --vhost-user");
        }
        if (!Files.exists(vhostUser)) {
            throw new IllegalArgumentException("--vhost-user '" + vhostUser + "': no such socket (is the back-end "
                    + "listening?)");
        }
    }

    /** The command as the user typed it: picocli's original arguments begin with the subcommand's name. */
    private String commandLine() {
        StringBuilder sb = new StringBuilder("vblk");
        for (String a : spec.commandLine().getParseResult().originalArgs()) {
            sb.append(' ').append(a.contains(" ") ? "'" + a + "'" : a);
        }
        return sb.toString();
    }

    private static String machine() {
        return Runtime.getRuntime().availableProcessors() + " CPUs, " + System.getProperty("os.name") + " "
                + System.getProperty("os.version") + ", Java " + System.getProperty("java.vm.version") + " ("
                + System.getProperty("java.vm.name") + "), " + Instant.now();
    }
}
