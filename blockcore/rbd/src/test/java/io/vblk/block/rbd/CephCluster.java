package io.vblk.block.rbd;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A one-node Ceph cluster for tests, started by {@code contrib/ceph-one-node.sh}
 * in a temporary directory (one monitor on 127.0.0.1, one BlueStore OSD on a
 * sparse file in that directory, pool {@code rbd}) and stopped — every daemon
 * killed by its pid, the directory deleted — by {@link #close()}. The
 * script's watcher also stops it when this JVM dies, so a crashed test leaves
 * nothing running (an OSD restarted by {@link #restartOsd} included). Start
 * one per test class and share it; every wait on the cluster is bounded.
 */
public final class CephCluster implements AutoCloseable {
    /** Bound of one cluster command (the script's own waits are bounded by the same). */
    public static final long COMMAND_TIMEOUT_S = 180;

    private final Path script;
    private final Path dir;
    private final Path conf;
    private final long startMillis;

    private CephCluster(Path script, Path dir, Path conf, long startMillis) {
        this.script = script;
        this.dir = dir;
        this.conf = conf;
        this.startMillis = startMillis;
    }

    /** Where the OSD keeps the pool: the script's {@code --store}. */
    public enum Store {
        /** On a sparse file in the cluster's directory: survives a SIGKILL, so {@link #restartOsd} works. */
        BLUESTORE,
        /** In the OSD's memory: a killed OSD takes the pool with it. */
        MEMSTORE
    }

    /** Starts a cluster with a BlueStore OSD; fails naming the missing packages or the daemon logs when it cannot. */
    public static CephCluster start() throws IOException, InterruptedException {
        return start(Store.BLUESTORE);
    }

    /** Starts a cluster whose OSD keeps its objects in {@code store}. */
    public static CephCluster start(Store store) throws IOException, InterruptedException {
        Path script = findScript();
        Path dir = Files.createTempDirectory("vblk-ceph-");
        long t0 = System.nanoTime();
        Result r = run(List.of(script.toString(), "start", dir.toString(), "--watch",
                Long.toString(ProcessHandle.current().pid()), "--store", store.name().toLowerCase()));
        if (r.exit != 0) {
            run(List.of(script.toString(), "stop", dir.toString()));
            throw new IllegalStateException("the one-node Ceph cluster did not start (exit " + r.exit + "): "
                    + r.err + (r.exit == 3 ? " — `./vblk test` installs ceph-mon ceph-osd ceph-common" : ""));
        }
        long ms = (System.nanoTime() - t0) / 1_000_000;
        System.out.println("ceph-one-node: cluster in " + dir + " usable after " + ms + " ms");
        return new CephCluster(script, dir, Path.of(r.out.trim()), ms);
    }

    /** Walks up from the working directory to the project's {@code contrib/ceph-one-node.sh}. */
    private static Path findScript() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            Path s = p.resolve("contrib/ceph-one-node.sh");
            if (Files.isRegularFile(s)) {
                return s;
            }
        }
        throw new IllegalStateException("contrib/ceph-one-node.sh not found above " + Path.of("").toAbsolutePath());
    }

    public Path conf() {
        return conf;
    }

    public long startMillis() {
        return startMillis;
    }

    /** {@code rbd:rbd/IMAGE:conf=...}: the filename form for this cluster. */
    public String filename(String image) {
        return "rbd:rbd/" + image + ":conf=" + conf;
    }

    public RbdOptions options(String image) {
        return RbdOptions.of("rbd", image).withConf(conf.toString());
    }

    /** Runs {@code rbd -c CONF ARGS...}; fails with its stderr on a non-zero exit. Returns stdout. */
    public String rbd(String... args) throws IOException, InterruptedException {
        return tool("rbd", args);
    }

    /** Runs {@code ceph -c CONF ARGS...}. */
    public String ceph(String... args) throws IOException, InterruptedException {
        return tool("ceph", args);
    }

    private String tool(String name, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(name, "-c", conf.toString()));
        cmd.addAll(List.of(args));
        Result r = run(cmd);
        if (r.exit != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + " failed (exit " + r.exit + "): " + r.err);
        }
        return r.out;
    }

    /** Runs a command to its end (bounded), with CEPH_CONF set, returning its exit, stdout and stderr. */
    public Result exec(List<String> cmd) throws IOException, InterruptedException {
        return run(cmd, conf);
    }

    public record Result(int exit, String out, String err) {
    }

    private static Result run(List<String> cmd) throws IOException, InterruptedException {
        return run(cmd, null);
    }

    private static Result run(List<String> cmd, Path conf) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd);
        if (conf != null) {
            pb.environment().put("CEPH_CONF", conf.toString());
        }
        Path out = Files.createTempFile("vblk-ceph-out", ".txt");
        Path err = Files.createTempFile("vblk-ceph-err", ".txt");
        try {
            pb.redirectOutput(out.toFile()).redirectError(err.toFile()).redirectInput(ProcessBuilder.Redirect.from(
                    Path.of("/dev/null").toFile()));
            Process p = pb.start();
            if (!p.waitFor(COMMAND_TIMEOUT_S, TimeUnit.SECONDS)) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                throw new IllegalStateException(String.join(" ", cmd) + " did not finish within " + COMMAND_TIMEOUT_S
                        + " s; stderr: " + Files.readString(err, StandardCharsets.UTF_8));
            }
            return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
                    Files.readString(err, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }

    /**
     * SIGKILLs the OSD (its pid file): the cluster stops answering I/O. The
     * monitor does not notice (a lone OSD has no peer to report it), so
     * clients keep sending to it until {@code rados_osd_op_timeout} fails
     * their requests.
     */
    public void killOsd() throws IOException {
        long pid = Long.parseLong(Files.readString(dir.resolve("run/osd.0.pid")).trim());
        ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
    }

    /**
     * Starts the OSD again on its data (SIGKILLing it first if it still
     * runs) and returns once every PG of pool {@code rbd} is active — the
     * script's {@code restart-osd}, bounded like every cluster command.
     * Only a BlueStore OSD has data to come back to.
     */
    public void restartOsd() throws IOException, InterruptedException {
        Result r = run(List.of(script.toString(), "restart-osd", dir.toString()));
        if (r.exit != 0) {
            throw new IllegalStateException("restart-osd failed (exit " + r.exit + "): " + r.err);
        }
    }

    /** The OSD's pid now (a restart changes it). */
    public long osdPid() throws IOException {
        return Long.parseLong(Files.readString(dir.resolve("run/osd.0.pid")).trim());
    }

    /**
     * SIGSTOPs the OSD: the cluster stops answering I/O without anything
     * being lost, as a hung or partitioned OSD looks to a client. {@link #continueOsd}
     * undoes it; a stopped OSD is still killed by {@link #close}.
     */
    public void stopOsd() throws IOException, InterruptedException {
        signalOsd("STOP");
    }

    /** SIGCONTs the OSD after {@link #stopOsd}: it answers again. */
    public void continueOsd() throws IOException, InterruptedException {
        signalOsd("CONT");
    }

    private void signalOsd(String signal) throws IOException, InterruptedException {
        String pid = Files.readString(dir.resolve("run/osd.0.pid")).trim();
        Result r = run(List.of("kill", "-" + signal, pid));
        if (r.exit != 0) {
            throw new IllegalStateException("kill -" + signal + " " + pid + " failed: " + r.err);
        }
    }

    /** Kills the daemons by pid and deletes the directory. */
    @Override
    public void close() throws IOException, InterruptedException {
        run(List.of(script.toString(), "stop", dir.toString()));
    }
}
