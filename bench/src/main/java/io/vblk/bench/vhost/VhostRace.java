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
 * <p>For each (device, queues) group both back-ends are started and a
 * machine is connected to each (firmware boot, driver probe). Then, per
 * workload, both machines warm up and the measurements alternate in pairs
 * (vblk then qemu-storage-daemon, then the other way round, ...), so the two
 * halves of a pair are taken seconds apart under the same background load.
 * The report gives, per row, the median over the repetitions of each
 * back-end and the median of the per-pair ratios vblk / qemu-storage-daemon.
 *
 * <pre>
 * java --enable-native-access=ALL-UNNAMED -cp bench/target/benchmarks.jar io.vblk.bench.vhost.VhostRace \
 *     --vblk cli/target/vblk.jar [--seconds 5] [--warmup 5] [--repeat 5] [--dir /tmp/race] \
 *     [--devices null,raw] [--queues 1,2] [--workloads QD1,QD32,64k] [--size-mib 256]
 * </pre>
 */
public final class VhostRace {
    /** One workload of the race: fio's {@code rw}, {@code bs}, {@code iodepth} per queue. */
    record Workload(String name, IoPattern pattern, int blockSize, int queueDepth) {
    }

    static final List<Workload> WORKLOADS = List.of(
            new Workload("4k randread QD1", IoPattern.parse("randread"), 4096, 1),
            new Workload("4k randread QD32", IoPattern.parse("randread"), 4096, 32),
            new Workload("64k seqread QD8", IoPattern.parse("read"), 65536, 8));

    /** One measured run. */
    record Result(String backend, int rep, String device, int queues, String workload, long requests, double seconds,
                  double iops, double mibps, double p50us, double p99us, double p999us, double maxUs,
                  double backendCpuS, double frontendCpuS) {
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
            for (int q : queueCounts) {
                if (device.equals("raw")) {
                    warmPageCache(img);
                }
                runGroup(device, q, img);
            }
        }
        report(devices, queueCounts);
    }

    /** Both back-ends, a machine on each, every workload in alternating pairs. */
    private void runGroup(String device, int queues, Path img) throws Exception {
        Path vs = dir.resolve("vblk.sock");
        Path qs = dir.resolve("qsd.sock");
        Files.deleteIfExists(vs);
        Files.deleteIfExists(qs);
        try (Backend vb = Backend.vblk(vblkJar, vs, device, img, size, queues, dir);
             Backend qb = Backend.qsd(qsd, qs, device, img, size, queues, dir);
             Machine vm = machine(vs, queues, "vblk");
             Machine qm = machine(qs, queues, "qsd")) {
            LinuxGuest vg = probe(vm, queues, "vblk");
            LinuxGuest qg = probe(qm, queues, "qsd");
            for (Workload w : workloads) {
                measure(vm, vg, w, warmup, null, null); // warm-up: JIT, caches, adaptive polling
                measure(qm, qg, w, warmup, null, null);
                for (int rep = 0; rep < repeat; rep++) {
                    boolean vblkFirst = rep % 2 == 0;
                    for (int i = 0; i < 2; i++) {
                        boolean v = (i == 0) == vblkFirst;
                        Result r = measure(v ? vm : qm, v ? vg : qg, w, seconds, v ? "vblk" : "qsd", v ? vb : qb);
                        r = new Result(r.backend(), rep, device, queues, w.name(), r.requests(), r.seconds(), r.iops(),
                                r.mibps(), r.p50us(), r.p99us(), r.p999us(), r.maxUs(), r.backendCpuS(),
                                r.frontendCpuS());
                        results.add(r);
                        out.printf(Locale.ROOT, "  %-5s %-4s %dq %-17s #%d %9.0f IOPS %8.1f MiB/s p50 %7.1f p99 %8.1f "
                                + "p99.9 %8.1f max %9.1f us, backend CPU %6.2f s/M req (frontend %6.2f s/M) load %s%n",
                                r.backend(), device, queues, w.name(), rep, r.iops(), r.mibps(), r.p50us(), r.p99us(),
                                r.p999us(), r.maxUs(), r.cpuPerMillion(), r.frontendCpuS() / r.requests() * 1e6,
                                loadAverage());
                    }
                }
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
        if (run.firstProblem() != null) {
            throw new IllegalStateException(run.firstProblem());
        }
        Histogram all0 = new Histogram(3_600_000_000_000L, 3);
        for (Histogram x : h) {
            all0.add(x);
        }
        long n = run.completed();
        return new Result(backend, 0, "", nq, w.name(), n, secs, n / secs, n * (double) w.blockSize() / secs / (1 << 20),
                all0.getValueAtPercentile(50) / 1e3, all0.getValueAtPercentile(99) / 1e3,
                all0.getValueAtPercentile(99.9) / 1e3, all0.getMaxValue() / 1e3, cpu, fe / 1e9);
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

    private void report(List<String> devices, List<Integer> queueCounts) {
        out.println();
        out.println("| device | queues | workload | back-end | IOPS | MiB/s | p50 µs | p99 µs | CPU s / M req | "
                + "IOPS vblk/qsd | CPU/req vblk/qsd |");
        out.println("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        for (String device : devices) {
            for (int q : queueCounts) {
                for (Workload w : workloads) {
                    Result v = median("vblk", device, q, w.name());
                    Result s = median("qsd", device, q, w.name());
                    if (v == null || s == null) {
                        continue;
                    }
                    double[] ratios = pairRatios(device, q, w.name());
                    for (Result r : List.of(v, s)) {
                        boolean first = r == v;
                        out.printf(Locale.ROOT, "| %s | %d | %s | %s | %.0f | %.1f | %.1f | %.1f | %.2f | %s | %s |%n",
                                device, q, w.name(), r.backend().equals("vblk") ? "vblk serve" : "qemu-storage-daemon",
                                r.iops(), r.mibps(), r.p50us(), r.p99us(), r.cpuPerMillion(),
                                first ? String.format(Locale.ROOT, "%.2f", ratios[0]) : "",
                                first ? String.format(Locale.ROOT, "%.2f", ratios[1]) : "");
                    }
                }
            }
        }
        out.println();
        out.println("raw runs (backend,rep,device,queues,workload,requests,seconds,iops,mibps,p50us,p99us,p999us,maxus,"
                + "backend_cpu_s,frontend_cpu_s):");
        for (Result r : results) {
            out.printf(Locale.ROOT, "%s,%d,%s,%d,%s,%d,%.3f,%.0f,%.1f,%.1f,%.1f,%.1f,%.1f,%.3f,%.3f%n", r.backend(),
                    r.rep(), r.device(), r.queues(), r.workload(), r.requests(), r.seconds(), r.iops(), r.mibps(),
                    r.p50us(), r.p99us(), r.p999us(), r.maxUs(), r.backendCpuS(), r.frontendCpuS());
        }
    }

    /** Medians of the per-pair ratios vblk / qsd: IOPS, and CPU seconds per request. */
    private double[] pairRatios(String device, int queues, String workload) {
        List<Double> iops = new ArrayList<>();
        List<Double> cpu = new ArrayList<>();
        for (Result v : results) {
            if (!v.backend().equals("vblk") || !v.device().equals(device) || v.queues() != queues
                    || !v.workload().equals(workload)) {
                continue;
            }
            for (Result s : results) {
                if (s.backend().equals("qsd") && s.rep() == v.rep() && s.device().equals(device)
                        && s.queues() == queues && s.workload().equals(workload)) {
                    iops.add(v.iops() / s.iops());
                    cpu.add(v.cpuPerMillion() / s.cpuPerMillion());
                }
            }
        }
        return new double[] {medianOf(iops), medianOf(cpu)};
    }

    private static double medianOf(List<Double> l) {
        if (l.isEmpty()) {
            return Double.NaN;
        }
        List<Double> c = new ArrayList<>(l);
        c.sort(null);
        int n = c.size();
        return n % 2 == 1 ? c.get(n / 2) : (c.get(n / 2 - 1) + c.get(n / 2)) / 2;
    }

    /** The run with the median IOPS among the repetitions of a row. */
    private Result median(String backend, String device, int queues, String workload) {
        List<Result> l = new ArrayList<>();
        for (Result r : results) {
            if (r.backend().equals(backend) && r.device().equals(device) && r.queues() == queues
                    && r.workload().equals(workload)) {
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

        static Backend vblk(Path jar, Path sock, String device, Path img, long size, int queues, Path dir)
                throws Exception {
            List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")
                    .toString(), "--enable-native-access=ALL-UNNAMED", "-jar", jar.toString(), "serve", "--socket",
                    sock.toString(), "--num-queues", Integer.toString(queues), "--iothreads", "1"));
            if (device.equals("null")) {
                cmd.addAll(List.of("--null", Long.toString(size)));
            } else {
                cmd.addAll(List.of("--image", img.toString(), "--format", "raw"));
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

        static Backend qsd(Path qsd, Path sock, String device, Path img, long size, int queues, Path dir)
                throws Exception {
            Path pidfile = dir.resolve("qsd.pid");
            Files.deleteIfExists(pidfile);
            String blockdev = device.equals("null")
                    ? "driver=null-co,node-name=disk0,size=" + size
                    : "driver=raw,node-name=disk0,file.driver=file,file.filename=" + img;
            List<String> cmd = List.of(qsd.toString(), "--daemonize", "--pidfile", pidfile.toString(),
                    "--object", "iothread,id=io0",
                    "--blockdev", blockdev,
                    "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + sock
                            + ",writable=on,num-queues=" + queues + ",iothread=io0");
            Process parent = new ProcessBuilder(cmd).redirectErrorStream(true)
                    .redirectOutput(dir.resolve("qsd.out").toFile()).start();
            if (!parent.waitFor(60, TimeUnit.SECONDS) || parent.exitValue() != 0) {
                parent.destroyForcibly();
                throw new IllegalStateException("qemu-storage-daemon did not start: " + cmd + "\n"
                        + Files.readString(dir.resolve("qsd.out")));
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
