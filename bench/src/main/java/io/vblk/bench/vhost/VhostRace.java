package io.vblk.bench.vhost;

import io.vblk.firmware.BootVerdict;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.IoPattern;
import io.vblk.guest.LatencySink;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.HdrHistogram.Histogram;

/**
 * The race of issue 10: {@code vblk serve} against
 * {@code qemu-storage-daemon --export type=vhost-user-blk}, both driven by
 * the same front-end — the simulated machine's vhost-user-blk device and its
 * Linux-like driver ({@link LinuxGuest}), one vCPU per queue — over a null
 * device and a raw file, one IOThread each. Each back-end runs as its own
 * process, so its CPU time is read from {@code /proc/PID/stat}.
 *
 * <p>Issue 19 made it fair: for the raw file each back-end runs with both of
 * its file engines ({@code aio=io_uring} and {@code aio=threads}), and the
 * file is served through the page cache and with O_DIRECT
 * ({@code cache.direct=on}) in separate rows. For each (device, cache,
 * queues) group every configuration's back-end is started with a machine on
 * it (firmware boot, driver probe); per workload each warms up, then
 * {@code repeat} rounds measure every configuration once, the order rotated
 * per round. The report gives, per row, each configuration's median and
 * spread, and vblk's ratio to the best qemu-storage-daemon configuration of
 * that row. All back-ends serve the same image at once, so image locking is
 * off on both sides.
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -cp bench/target/benchmarks.jar io.vblk.bench.vhost.VhostRace \
 *     --vblk cli/target/vblk.jar [--seconds 5] [--warmup 5] [--repeat 5] [--dir /tmp/race] \
 *     [--devices null,raw] [--queues 1,2] [--workloads QD1,QD32,64k] [--size-mib 256] \
 *     [--aio io_uring,threads] [--caches page,direct] [--perf EVENTS] [--vblk-poll-max-ns 32768,0]
 * </pre>
 *
 * <p>{@code --perf EVENTS} runs {@code perf stat -e EVENTS -p PID} on the
 * back-end process of every measured run ({@link PerfStat}) and reports the
 * counts per request, to say where a short row's cycles and wake-ups go.
 * {@code --vblk-poll-max-ns A,B} runs one vblk configuration per IOThread
 * polling bound ({@code vblk serve --poll-max-ns}), interleaved with the rest.
 */
public final class VhostRace {
    /** One workload of the race: fio's {@code rw}, {@code bs}, {@code iodepth} per queue. */
    record Workload(String name, IoPattern pattern, int blockSize, int queueDepth) {
    }

    static final List<Workload> WORKLOADS = List.of(
            new Workload("4k randread QD1", IoPattern.parse("randread"), 4096, 1),
            new Workload("4k randread QD32", IoPattern.parse("randread"), 4096, 32),
            new Workload("4k randwrite QD32", IoPattern.parse("randwrite"), 4096, 32),
            new Workload("64k seqread QD8", IoPattern.parse("read"), 65536, 8));

    /**
     * One back-end configuration of a group: vblk serve or qemu-storage-daemon,
     * with the file driver's {@code aio} engine ({@code null} for the null
     * device, where there is no file).
     */
    record Config(boolean vblk, String aio, Long pollMaxNs) {
        String label() {
            return (vblk ? "vblk" : "qsd") + (aio == null ? "" : " aio=" + aio)
                    + (pollMaxNs == null ? "" : " poll-max-ns=" + pollMaxNs);
        }
    }

    /** One measured run; {@code backend} is the {@link Config#label()}, {@code cache} "page", "direct" or "-". */
    record Result(String backend, int rep, String device, String cache, int queues, String workload, long requests,
                  double seconds,
                  double iops, double mibps, double p50us, double p99us, double p999us, double maxUs,
                  double backendCpuS, double frontendCpuS, Map<String, Double> perf) {
        double cpuPerMillion() {
            return backendCpuS / requests * 1e6;
        }
    }

    private final Path vblkJar;
    private final Path qsd;
    private final Path dir;
    private final Duration seconds;
    private final Duration warmup;
    private final int repeat;
    private final long size;
    private final PrintStream out;
    private final List<Result> results = new ArrayList<>();
    private List<Workload> workloads = WORKLOADS;
    private List<String> aios = List.of("io_uring", "threads");
    private List<String> caches = List.of("page", "direct");
    /** {@code --perf EVENTS}: perf stat of each measured back-end run, reported per request. */
    private String perfEvents;
    /** {@code --vblk-poll-max-ns A,B}: one vblk configuration per IOThread polling bound (null: vblk's default). */
    private List<Long> vblkPollMaxNs = java.util.Collections.singletonList(null);

    VhostRace(Path vblkJar, Path qsd, Path dir, Duration seconds, Duration warmup, int repeat, long size,
              PrintStream out) {
        this.vblkJar = vblkJar;
        this.qsd = qsd;
        this.dir = dir;
        this.seconds = seconds;
        this.warmup = warmup;
        this.repeat = repeat;
        this.size = size;
        this.out = out;
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> a = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) {
            a.put(args[i], args[i + 1]);
        }
        Path jar = Path.of(a.getOrDefault("--vblk", "cli/target/vblk.jar"));
        if (!Files.isReadable(jar)) {
            System.err.println("vhost race: " + jar + " not found; build it with mvn -B -q -DskipTests package -pl cli -am");
            System.exit(2);
        }
        Path qsd = Path.of(a.getOrDefault("--qsd", "/usr/bin/qemu-storage-daemon"));
        if (!Files.isExecutable(qsd)) {
            System.err.println("vhost race: " + qsd + " not found; apt-get install -y qemu-system-x86 "
                    + "(qemu-storage-daemon is in qemu-system-common)");
            System.exit(2);
        }
        Path dir = Path.of(a.getOrDefault("--dir", Files.createTempDirectory("vhost-race").toString()));
        Files.createDirectories(dir);
        VhostRace r = new VhostRace(jar, qsd, dir, Duration.ofSeconds(Long.parseLong(a.getOrDefault("--seconds", "10"))),
                Duration.ofSeconds(Long.parseLong(a.getOrDefault("--warmup", "3"))),
                Integer.parseInt(a.getOrDefault("--repeat", "3")), Long.parseLong(a.getOrDefault("--size-mib", "256")) << 20,
                System.out);
        List<String> devices = List.of(a.getOrDefault("--devices", "null,raw").split(","));
        List<Integer> queues = new ArrayList<>();
        for (String q : a.getOrDefault("--queues", "1,2").split(",")) {
            queues.add(Integer.parseInt(q));
        }
        r.aios = List.of(a.getOrDefault("--aio", "io_uring,threads").split(","));
        r.caches = List.of(a.getOrDefault("--caches", "page,direct").split(","));
        r.perfEvents = a.get("--perf");
        if (a.containsKey("--vblk-poll-max-ns")) {
            r.vblkPollMaxNs = new ArrayList<>();
            for (String v : a.get("--vblk-poll-max-ns").split(",")) {
                r.vblkPollMaxNs.add(Long.parseLong(v));
            }
        }
        String only = a.get("--workloads"); // e.g. "QD1" runs the rows whose name contains it
        if (only != null) {
            r.workloads = new ArrayList<>();
            for (Workload w : WORKLOADS) {
                for (String o : only.split(",")) {
                    if (w.name().contains(o) && !r.workloads.contains(w)) {
                        r.workloads.add(w);
                    }
                }
            }
        }
        r.run(devices, queues);
        System.exit(0);
    }

    void run(List<String> devices, List<Integer> queueCounts) throws Exception {
        Path img = dir.resolve("race.raw");
        fill(img, size);
        out.printf("vhost race: started %s, %d s per row after %d s warm-up, %d repetition(s), devices %s, queues %s%n",
                Instant.now(), seconds.toSeconds(), warmup.toSeconds(), repeat, devices, queueCounts);
        for (String device : devices) {
            for (String cache : device.equals("null") ? List.of("-") : caches) {
                for (int q : queueCounts) {
                    if (device.equals("raw")) {
                        warmPageCache(img);
                    }
                    runGroup(device, cache, q, img);
                }
            }
        }
        report(devices, queueCounts);
    }

    /**
     * Every configuration's back-end with a machine on each, then every
     * workload: a warm-up on each, then {@code repeat} rounds that measure
     * each configuration once, in an order rotated per round, so all of them
     * share the background load.
     */
    private void runGroup(String device, String cache, int queues, Path img) throws Exception {
        List<Config> configs = new ArrayList<>();
        for (boolean vblk : List.of(true, false)) {
            for (Long poll : vblk ? vblkPollMaxNs : java.util.Collections.<Long>singletonList(null)) {
                if (device.equals("null")) {
                    configs.add(new Config(vblk, null, poll));
                } else {
                    for (String aio : aios) {
                        configs.add(new Config(vblk, aio, poll));
                    }
                }
            }
        }
        boolean direct = cache.equals("direct");
        List<Backend> backends = new ArrayList<>();
        List<Machine> machines = new ArrayList<>();
        List<LinuxGuest> guests = new ArrayList<>();
        try {
            for (int i = 0; i < configs.size(); i++) {
                Config c = configs.get(i);
                Path sock = dir.resolve("be" + i + ".sock");
                Files.deleteIfExists(sock);
                backends.add(c.vblk() ? Backend.vblk(vblkJar, sock, device, img, size, queues, dir, c.aio(), direct,
                        c.pollMaxNs())
                        : Backend.qsd(qsd, sock, device, img, size, queues, dir, c.aio(), direct, i));
                machines.add(machine(sock, queues, c.label()));
                guests.add(probe(machines.get(i), queues, c.label()));
            }
            for (Workload w : workloads) {
                for (int i = 0; i < configs.size(); i++) {
                    measure(machines.get(i), guests.get(i), w, warmup, null, null); // JIT, caches, adaptive polling
                }
                for (int rep = 0; rep < repeat; rep++) {
                    for (int k = 0; k < configs.size(); k++) {
                        int i = (k + rep) % configs.size();
                        Config c = configs.get(i);
                        Result r = measure(machines.get(i), guests.get(i), w, seconds, c.label(), backends.get(i));
                        r = new Result(r.backend(), rep, device, cache, queues, w.name(), r.requests(), r.seconds(),
                                r.iops(), r.mibps(), r.p50us(), r.p99us(), r.p999us(), r.maxUs(), r.backendCpuS(),
                                r.frontendCpuS(), r.perf());
                        results.add(r);
                        out.printf(Locale.ROOT, "  %-17s %-4s %-6s %dq %-17s #%d %9.0f IOPS %8.1f MiB/s p50 %7.1f "
                                + "p99 %8.1f p99.9 %8.1f max %9.1f us, backend CPU %6.2f s/M req (frontend %6.2f s/M) "
                                + "load %s%n", r.backend(), device, cache, queues, w.name(), rep, r.iops(), r.mibps(),
                                r.p50us(), r.p99us(), r.p999us(), r.maxUs(), r.cpuPerMillion(),
                                r.frontendCpuS() / r.requests() * 1e6, loadAverage());
                        if (!r.perf().isEmpty()) {
                            out.println("    perf per request: " + perfPerRequest(r));
                        }
                    }
                }
            }
        } finally {
            for (Machine m : machines) {
                m.close();
            }
            for (Backend b : backends) {
                b.close();
            }
        }
    }

    private static Machine machine(Path sock, int queues, String name) {
        return Machine.start(MachineConfig.of(queues, 0, List.of(DiskSpec.vhostUser(sock).withQueues(queues))));
    }

    private static LinuxGuest probe(Machine m, int queues, String name) {
        BootVerdict v = m.boot().verdict();
        if (v == BootVerdict.HANG_AT_MBR_READ) {
            throw new IllegalStateException(name + ": the firmware's MBR read hung\n" + m.dump());
        }
        LinuxGuest g = LinuxGuest.probe(m, 0, queues, 256, true);
        if (g.driver().numQueues() != queues) {
            throw new IllegalStateException(name + ": driver has " + g.driver().numQueues() + " queues");
        }
        return g;
    }

    private static String loadAverage() {
        try {
            String[] f = Files.readString(Path.of("/proc/loadavg")).split(" ");
            return f[0];
        } catch (IOException e) {
            return "?";
        }
    }

    private Result measure(Machine m, LinuxGuest g, Workload w, Duration d, String backend, Backend b)
            throws Exception {
        int nq = g.driver().numQueues();
        Histogram[] h = new Histogram[nq];
        LatencySink[] sinks = new LatencySink[nq];
        for (int q = 0; q < nq; q++) {
            Histogram hq = new Histogram(3_600_000_000_000L, 3);
            h[q] = hq;
            sinks[q] = hq::recordValue;
        }
        AtomicBoolean stop = new AtomicBoolean();
        GuestWorkload.Spec spec = new GuestWorkload.Spec(w.queueDepth(), w.blockSize(), w.pattern(), false, false);
        PerfStat perf = perfEvents != null && b != null ? PerfStat.attach(b.handle.pid(), perfEvents, dir) : null;
        if (perf != null) {
            perf.enable();
        }
        double cpu0 = b == null ? 0 : b.cpuSeconds();
        long fe0 = frontendCpuNanos();
        long t0 = System.nanoTime();
        LinuxGuest.Run run = g.start(spec, stop::get, sinks, 42);
        CompletableFuture<Void> all = CompletableFuture.allOf(run.done().toArray(new CompletableFuture[0]));
        try {
            all.get(d.toNanos(), TimeUnit.NANOSECONDS);
            throw new IllegalStateException("the workload ended early: " + run.firstProblem());
        } catch (java.util.concurrent.TimeoutException expected) {
            stop.set(true);
        }
        m.await("workload drain", all, Duration.ofSeconds(60));
        double secs = (System.nanoTime() - t0) / 1e9;
        long fe = frontendCpuNanos() - fe0;
        double cpu = b == null ? 0 : b.cpuSeconds() - cpu0;
        Map<String, Double> counts = Map.of();
        if (perf != null) {
            perf.disable();
            int workers = perf.iouWorkers();
            counts = new LinkedHashMap<>(perf.finish());
            perf.close();
            counts.put(PerfStat.IOU_WRK, (double) workers);
        }
        if (run.firstProblem() != null) {
            throw new IllegalStateException(run.firstProblem());
        }
        Histogram all0 = new Histogram(3_600_000_000_000L, 3);
        for (Histogram x : h) {
            all0.add(x);
        }
        long n = run.completed();
        return new Result(backend, 0, "", "", nq, w.name(), n, secs, n / secs, n * (double) w.blockSize() / secs / (1 << 20),
                all0.getValueAtPercentile(50) / 1e3, all0.getValueAtPercentile(99) / 1e3,
                all0.getValueAtPercentile(99.9) / 1e3, all0.getMaxValue() / 1e3, cpu, fe / 1e9, counts);
    }

    private static long frontendCpuNanos() {
        java.lang.management.OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
        if (os instanceof com.sun.management.OperatingSystemMXBean) {
            return ((com.sun.management.OperatingSystemMXBean) os).getProcessCpuTime();
        }
        return 0;
    }

    /** A raw file with non-zero data everywhere (so neither back-end reads holes). */
    private static void fill(Path img, long size) throws IOException {
        if (Files.exists(img) && Files.size(img) == size) {
            return;
        }
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
            for (int i = 0; i < b.capacity(); i += 8) {
                b.putLong(i, 0x9e3779b97f4a7c15L * (i + 1));
            }
            for (long off = 0; off < size; off += b.capacity()) {
                b.clear();
                ch.write(b, off);
            }
        }
    }

    private static void warmPageCache(Path img) throws IOException {
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
            for (long off = 0; off < ch.size(); off += b.capacity()) {
                b.clear();
                ch.read(b, off);
            }
        }
    }

    // ------------------------------------------------------------------ report

    /**
     * Per row (device, cache mode, queues, workload): each configuration's
     * median over the rounds, the spread of its IOPS, and for vblk's rows the
     * ratio of its median IOPS to the best qemu-storage-daemon configuration's
     * median in that row (and the CPU per request against that same one).
     */
    private void report(List<String> devices, List<Integer> queueCounts) {
        out.println();
        out.println("| device | cache | queues | workload | back-end | IOPS (median) | min..max | MiB/s | p50 µs | p99 µs "
                + "| CPU s / M req | IOPS vs qsd best | CPU/req vs qsd best |");
        out.println("| --- | --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (String device : devices) {
            for (String cache : device.equals("null") ? List.of("-") : caches) {
                for (int q : queueCounts) {
                    for (Workload w : workloads) {
                        List<String> labels = new ArrayList<>();
                        for (Result r : results) {
                            if (matches(r, device, cache, q, w.name()) && !labels.contains(r.backend())) {
                                labels.add(r.backend());
                            }
                        }
                        Result best = null;
                        for (String l : labels) {
                            Result m = median(l, device, cache, q, w.name());
                            if (l.startsWith("qsd") && (best == null || m.iops() > best.iops())) {
                                best = m;
                            }
                        }
                        for (String l : labels) {
                            Result m = median(l, device, cache, q, w.name());
                            double[] spread = spread(l, device, cache, q, w.name());
                            boolean vblk = l.startsWith("vblk") && best != null;
                            out.printf(Locale.ROOT, "| %s | %s | %d | %s | %s%s | %.0f | %.0f..%.0f | %.1f | %.1f | %.1f "
                                    + "| %.2f | %s | %s |%n", device, cache, q, w.name(), l,
                                    best != null && l.equals(best.backend()) ? " (best qsd)" : "", m.iops(), spread[0],
                                    spread[1], m.mibps(), m.p50us(), m.p99us(), m.cpuPerMillion(),
                                    vblk ? String.format(Locale.ROOT, "%.2f", m.iops() / best.iops()) : "",
                                    vblk ? String.format(Locale.ROOT, "%.2f", m.cpuPerMillion() / best.cpuPerMillion())
                                            : "");
                        }
                    }
                }
            }
        }
        reportPerf(devices, queueCounts);
        out.println();
        out.println("raw runs (backend,rep,device,cache,queues,workload,requests,seconds,iops,mibps,p50us,p99us,p999us,"
                + "maxus,backend_cpu_s,frontend_cpu_s):");
        for (Result r : results) {
            out.printf(Locale.ROOT, "%s,%d,%s,%s,%d,%s,%d,%.3f,%.0f,%.1f,%.1f,%.1f,%.1f,%.1f,%.3f,%.3f%n", r.backend(),
                    r.rep(), r.device(), r.cache(), r.queues(), r.workload(), r.requests(), r.seconds(), r.iops(),
                    r.mibps(), r.p50us(), r.p99us(), r.p999us(), r.maxUs(), r.backendCpuS(), r.frontendCpuS());
        }
    }

    /** The perf counts of a run per request (task-clock as CPU µs per request; iou-wrk as counted). */
    private static String perfPerRequest(Result r) {
        StringBuilder sb = new StringBuilder();
        for (Map.Entry<String, Double> e : r.perf().entrySet()) {
            if (sb.length() > 0) {
                sb.append(", ");
            }
            sb.append(String.format(Locale.ROOT, "%s %.3f", shortName(e.getKey()), perRequest(r, e.getKey())));
        }
        return sb.toString();
    }

    private static double perRequest(Result r, String event) {
        double v = r.perf().getOrDefault(event, 0.0);
        if (event.equals(PerfStat.IOU_WRK)) {
            return v;
        }
        if (event.equals("task-clock")) {
            return v * 1e3 / r.requests(); // ms -> µs per request
        }
        return v / r.requests();
    }

    private static String shortName(String event) {
        String s = event.replace("syscalls:sys_enter_", "").replace("io_uring:io_uring_", "uring:");
        return s.equals("task-clock") ? "cpu_us" : s;
    }

    /**
     * With {@code --perf}: per row and back-end, each event per request as
     * the median over the rounds, with min..max.
     */
    private void reportPerf(List<String> devices, List<Integer> queueCounts) {
        List<String> events = new ArrayList<>();
        for (Result r : results) {
            for (String e : r.perf().keySet()) {
                if (!events.contains(e)) {
                    events.add(e);
                }
            }
        }
        if (events.isEmpty()) {
            return;
        }
        out.println();
        out.println("perf stat of the back-end process per request (median of the rounds, min..max); cpu_us is "
                + "task-clock in µs per request, iou-wrk the io_uring worker threads alive at the end of a run:");
        StringBuilder h = new StringBuilder("| device | cache | queues | workload | back-end | IOPS (median)");
        StringBuilder sep = new StringBuilder("| --- | --- | --- | --- | --- | ---:");
        for (String e : events) {
            h.append(" | ").append(shortName(e));
            sep.append(" | ---:");
        }
        out.println(h.append(" |"));
        out.println(sep.append(" |"));
        for (String device : devices) {
            for (String cache : device.equals("null") ? List.of("-") : caches) {
                for (int q : queueCounts) {
                    for (Workload w : workloads) {
                        List<String> labels = new ArrayList<>();
                        for (Result r : results) {
                            if (matches(r, device, cache, q, w.name()) && !labels.contains(r.backend())) {
                                labels.add(r.backend());
                            }
                        }
                        for (String l : labels) {
                            List<Result> runs = new ArrayList<>();
                            for (Result r : results) {
                                if (r.backend().equals(l) && matches(r, device, cache, q, w.name())) {
                                    runs.add(r);
                                }
                            }
                            StringBuilder row = new StringBuilder(String.format(Locale.ROOT, "| %s | %s | %d | %s | %s | %.0f",
                                    device, cache, q, w.name(), l, median(l, device, cache, q, w.name()).iops()));
                            for (String e : events) {
                                double[] v = runs.stream().mapToDouble(r -> perRequest(r, e)).sorted().toArray();
                                row.append(String.format(Locale.ROOT, " | %.3f (%.3f..%.3f)", v[v.length / 2], v[0],
                                        v[v.length - 1]));
                            }
                            out.println(row.append(" |"));
                        }
                    }
                }
            }
        }
    }

    private static boolean matches(Result r, String device, String cache, int queues, String workload) {
        return r.device().equals(device) && r.cache().equals(cache) && r.queues() == queues
                && r.workload().equals(workload);
    }

    private double[] spread(String backend, String device, String cache, int queues, String workload) {
        double lo = Double.MAX_VALUE;
        double hi = 0;
        for (Result r : results) {
            if (r.backend().equals(backend) && matches(r, device, cache, queues, workload)) {
                lo = Math.min(lo, r.iops());
                hi = Math.max(hi, r.iops());
            }
        }
        return new double[] {lo, hi};
    }

    /** The run with the median IOPS among the repetitions of a row. */
    private Result median(String backend, String device, String cache, int queues, String workload) {
        List<Result> l = new ArrayList<>();
        for (Result r : results) {
            if (r.backend().equals(backend) && matches(r, device, cache, queues, workload)) {
                l.add(r);
            }
        }
        if (l.isEmpty()) {
            return null;
        }
        l.sort(Comparator.comparingDouble(Result::iops));
        return l.get(l.size() / 2);
    }

    // ------------------------------------------------------------------ back-end processes

    /** A back-end child process: its pid (for CPU time) and how to stop it. */
    static final class Backend implements AutoCloseable {
        final String name;
        final ProcessHandle handle;
        final Process child;

        private Backend(String name, ProcessHandle handle, Process child) {
            this.name = name;
            this.handle = handle;
            this.child = child;
        }

        /**
         * {@code vblk serve} with the file driver's {@code --aio} and {@code --cache-direct}; locking off,
         * as every back-end of the race serves the same image at once.
         */
        static Backend vblk(Path jar, Path sock, String device, Path img, long size, int queues, Path dir, String aio,
                boolean direct, Long pollMaxNs) throws Exception {
            List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                    .toString(), "--enable-native-access=ALL-UNNAMED", "-jar", jar.toString(), "serve", "--socket",
                    sock.toString(), "--num-queues", Integer.toString(queues), "--iothreads", "1"));
            if (pollMaxNs != null) {
                cmd.addAll(List.of("--poll-max-ns", Long.toString(pollMaxNs)));
            }
            if (device.equals("null")) {
                cmd.addAll(List.of("--null", Long.toString(size)));
            } else {
                cmd.addAll(List.of("--image", img.toString(), "--format", "raw", "--aio", aio, "--locking", "off"));
                if (direct) {
                    cmd.add("--cache-direct");
                }
            }
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            CompletableFuture<String> ready = new CompletableFuture<>();
            Thread t = new Thread(() -> {
                try {
                    String l;
                    while ((l = r.readLine()) != null) {
                        if (l.contains("listening on")) {
                            ready.complete(l);
                        }
                    }
                } catch (IOException e) {
                    ready.completeExceptionally(e);
                }
                ready.completeExceptionally(new IOException("vblk serve exited"));
            }, "vblk-serve-output");
            t.setDaemon(true);
            t.start();
            try {
                ready.get(60, TimeUnit.SECONDS);
            } catch (Exception e) {
                p.destroyForcibly();
                throw new IllegalStateException("vblk serve did not start: " + cmd, e);
            }
            return new Backend("vblk", p.toHandle(), p);
        }

        /** qemu-storage-daemon with {@code file.aio} and {@code cache.direct}; locking off (see {@link #vblk}). */
        static Backend qsd(Path qsd, Path sock, String device, Path img, long size, int queues, Path dir, String aio,
                boolean direct, int id) throws Exception {
            Path pidfile = dir.resolve("qsd" + id + ".pid");
            Files.deleteIfExists(pidfile);
            String blockdev = device.equals("null")
                    ? "driver=null-co,node-name=disk0,size=" + size
                    : "driver=raw,node-name=disk0,cache.direct=" + (direct ? "on" : "off")
                            + ",file.driver=file,file.locking=off,file.aio=" + aio + ",file.filename=" + img;
            List<String> cmd = List.of(qsd.toString(), "--daemonize", "--pidfile", pidfile.toString(),
                    "--object", "iothread,id=io0",
                    "--blockdev", blockdev,
                    "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + sock
                            + ",writable=on,num-queues=" + queues + ",iothread=io0");
            Process parent = new ProcessBuilder(cmd).redirectErrorStream(true)
                    .redirectOutput(dir.resolve("qsd" + id + ".out").toFile()).start();
            if (!parent.waitFor(60, TimeUnit.SECONDS) || parent.exitValue() != 0) {
                parent.destroyForcibly();
                throw new IllegalStateException("qemu-storage-daemon did not start: " + cmd + "\n"
                        + Files.readString(dir.resolve("qsd" + id + ".out")));
            }
            long pid = Long.parseLong(Files.readString(pidfile).trim());
            return new Backend("qsd", ProcessHandle.of(pid).orElseThrow(), null);
        }

        /** utime + stime of the process, in seconds (clock ticks of 1/100 s). */
        double cpuSeconds() throws IOException {
            String s = Files.readString(Path.of("/proc", Long.toString(handle.pid()), "stat"));
            String[] f = s.substring(s.lastIndexOf(')') + 2).split(" ");
            return (Long.parseLong(f[11]) + Long.parseLong(f[12])) / 100.0;
        }

        @Override
        public void close() {
            handle.destroy();
            try {
                handle.onExit().get(10, TimeUnit.SECONDS);
            } catch (Exception e) {
                handle.destroyForcibly();
            }
        }
    }
}
