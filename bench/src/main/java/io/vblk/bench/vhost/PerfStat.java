package io.vblk.bench.vhost;

import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * {@code perf stat -p PID} around one measured run of the race: the
 * back-end's syscalls, context switches, io_uring punts and CPU time in
 * exactly the measurement window. perf starts with its counters disabled
 * ({@code -D -1}) and is switched on and off through its control FIFOs
 * ({@code --control fifo:CTL,ACK}), each switch acknowledged, so the window
 * is the run's and nothing waits on a timer. Also counts the back-end's
 * io_uring worker threads ({@code iou-wrk-*}) alive at the end of the run.
 */
final class PerfStat implements AutoCloseable {
    /** The count of {@code iou-wrk} threads at the end of the run (not per request). */
    static final String IOU_WRK = "iou-wrk threads";

    private final long pid;
    private final Process perf;
    private final Path outFile;
    private final OutputStream ctl;
    private final BufferedReader ack;

    private PerfStat(long pid, Process perf, Path outFile, OutputStream ctl, BufferedReader ack) {
        this.pid = pid;
        this.perf = perf;
        this.outFile = outFile;
        this.ctl = ctl;
        this.ack = ack;
    }

    /** Attaches perf to every thread of {@code pid}, counters off. */
    static PerfStat attach(long pid, String events, Path dir) throws IOException {
        Path ctlFifo = dir.resolve("perf-ctl-" + pid);
        Path ackFifo = dir.resolve("perf-ack-" + pid);
        Path out = dir.resolve("perf-" + pid + ".csv");
        for (Path f : List.of(ctlFifo, ackFifo, out)) {
            Files.deleteIfExists(f);
        }
        for (Path f : List.of(ctlFifo, ackFifo)) {
            run("mkfifo", f.toString());
        }
        Process p = new ProcessBuilder("perf", "stat", "-x", ",", "-D", "-1", "--control",
                "fifo:" + ctlFifo + "," + ackFifo, "-e", events, "-p", Long.toString(pid), "-o", out.toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("perf-" + pid + ".log").toFile()).start();
        // perf opens CTL read-write, then blocks opening ACK for writing until it has a reader
        CompletableFuture<Object[]> opened = CompletableFuture.supplyAsync(() -> {
            try {
                OutputStream c = new FileOutputStream(ctlFifo.toFile());
                BufferedReader a = new BufferedReader(new InputStreamReader(new FileInputStream(ackFifo.toFile()),
                        StandardCharsets.US_ASCII));
                return new Object[] {c, a};
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        try {
            Object[] o = opened.get(30, TimeUnit.SECONDS);
            return new PerfStat(pid, p, out, (OutputStream) o[0], (BufferedReader) o[1]);
        } catch (Exception e) {
            p.destroyForcibly();
            throw new IOException("perf stat did not start (see " + dir.resolve("perf-" + pid + ".log") + ")", e);
        }
    }

    void enable() throws IOException {
        command("enable");
    }

    void disable() throws IOException {
        command("disable");
    }

    private void command(String c) throws IOException {
        ctl.write((c + "\n").getBytes(StandardCharsets.US_ASCII));
        ctl.flush();
        String a = ack.readLine(); // perf writes sizeof("ack\n"): the NUL starts the next line
        if (a == null || !a.replace("\0", "").equals("ack")) {
            throw new IOException("perf stat did not acknowledge '" + c + "': " + a);
        }
    }

    /** Live {@code iou-wrk} threads of the process now. */
    int iouWorkers() {
        try (Stream<Path> tasks = Files.list(Path.of("/proc", Long.toString(pid), "task"))) {
            return (int) tasks.filter(t -> {
                try {
                    return Files.readString(t.resolve("comm")).startsWith("iou-wrk");
                } catch (IOException e) {
                    return false; // the thread ended meanwhile
                }
            }).count();
        } catch (IOException e) {
            return -1;
        }
    }

    /**
     * Stops perf and returns its counts by event name ({@code task-clock} in
     * milliseconds); an event perf could not count is 0.
     */
    Map<String, Double> finish() throws IOException, InterruptedException {
        run("kill", "-INT", Long.toString(perf.pid())); // perf stat prints its counts on SIGINT (not SIGTERM)
        if (!perf.waitFor(30, TimeUnit.SECONDS)) {
            perf.destroyForcibly();
            throw new IOException("perf stat did not exit");
        }
        Map<String, Double> m = new LinkedHashMap<>();
        for (String l : Files.readAllLines(outFile)) {
            String[] f = l.split(",");
            if (l.startsWith("#") || f.length < 3 || f[2].isEmpty()) {
                continue;
            }
            double v;
            try {
                v = Double.parseDouble(f[0]);
            } catch (NumberFormatException e) {
                v = 0; // <not counted>, <not supported>
            }
            m.put(f[2], v);
        }
        return m;
    }

    @Override
    public void close() throws IOException {
        perf.destroyForcibly();
        ctl.close();
        ack.close();
    }

    private static void run(String... cmd) throws IOException {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            if (!p.waitFor(10, TimeUnit.SECONDS) || p.exitValue() != 0) {
                throw new IOException(String.join(" ", cmd) + " failed");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException(e);
        }
    }
}
