package io.vblk.bench.block;

import io.vblk.aio.AioContext;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockCompletion;
import io.vblk.block.IoVec;

import com.sun.jna.Memory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The rbd driver's two completion paths (issue 25: "measure both in JMH and
 * keep the faster"): 4 KiB random reads or writes at queue depth 32 through a
 * {@code BlockBackend} on an {@code rbd} node in an IOThread, with
 * {@code vblk.rbd.completion} set to {@code eventfd} (librbd writes an
 * eventfd the IOThread watches; {@code rbd_poll_io_events} there) or
 * {@code callback} (a JNA callback on librbd's finisher thread schedules a
 * BH, QEMU's way). Everything else — librbd, the cluster, the block layer —
 * is the same, so the difference is the hand-off.
 *
 * <p>The cluster: {@code -Dvblk.bench.rbd.conf=FILE} names a running one (so
 * interleaved forks share it: same-run ratios); without it each trial starts
 * its own one-node cluster with {@code contrib/ceph-one-node.sh} (the
 * project's directory is found from the working directory up) and stops it at
 * tear-down, a watcher stopping it if the fork dies. Each trial writes its
 * own 64 MiB image whole first ({@code rbd bench}, 4 MiB writes), so reads
 * find objects; librbd's cache is off, so every read reaches the OSD.
 *
 * <p>One op = one completed request; the IOThread keeps 32 in flight, each
 * completion issuing the next at a random 4 KiB-aligned offset, until
 * {@link #OPS} completed. A failed request fails the iteration.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 2, time = 5)
@Measurement(iterations = 3, time = 5)
@Fork(value = 1, jvmArgs = "--enable-native-access=ALL-UNNAMED")
public class RbdCompletionBench {
    static final int OPS = 500;
    private static final int DEPTH = 32;
    private static final long SIZE = 64L << 20;
    private static final long BLOCKS = SIZE / BlockRig.REQ;

    @Param({"eventfd", "callback"})
    public String completion;

    @Param({"randread", "randwrite"})
    public String rw;

    private Path clusterDir;     // a cluster this trial started, or null
    private Path script;
    private String conf;
    private String image;
    private BlockRig rig;
    private AioContext ctx;
    private BlockBackend blk;
    private boolean write;
    private Memory[] mem;
    private IoVec[] iov;
    private Slot[] slots;
    private Runnable loop;
    private long seed = 0x9E3779B97F4A7C15L; // IOThread only, like the fields below
    private int issued;
    private int completed;
    private int error;

    @Setup
    public void setUp() throws IOException, InterruptedException {
        conf = System.getProperty("vblk.bench.rbd.conf");
        if (conf == null) {
            script = findScript();
            clusterDir = Files.createTempDirectory("vblk-bench-ceph-");
            conf = run(List.of(script.toString(), "start", clusterDir.toString(), "--watch",
                    Long.toString(ProcessHandle.current().pid()))).trim();
        }
        image = "jmh-" + ProcessHandle.current().pid() + "-" + completion + "-" + rw;
        run(List.of("rbd", "-c", conf, "create", "--size", (SIZE >> 20) + "M", "rbd/" + image));
        run(List.of("rbd", "-c", conf, "bench", "--io-type", "write", "--io-pattern", "seq", "--io-size", "4M",
                "--io-total", (SIZE >> 20) + "M", "rbd/" + image));
        // read when the node opens (RbdDriver.open): this fork's path
        System.setProperty("vblk.rbd.completion", completion);
        write = rw.equals("randwrite");
        if (!write && !rw.equals("randread")) {
            throw new IllegalArgumentException("rw must be randread or randwrite, not " + rw);
        }
        rig = BlockRig.protocolDisk("rbd:rbd/" + image + ":conf=" + conf + ":rbd_cache=false", 32768);
        ctx = rig.ctx;
        blk = rig.blk;
        mem = new Memory[DEPTH];
        iov = new IoVec[DEPTH];
        slots = new Slot[DEPTH];
        for (int i = 0; i < DEPTH; i++) {
            iov[i] = BlockRig.buffer(mem, i);
            mem[i].setMemory(0, BlockRig.REQ, (byte) i);
            slots[i] = new Slot(i);
        }
        loop = this::closedLoop;
    }

    @TearDown
    public void tearDown() throws IOException, InterruptedException {
        try {
            if (rig != null) {
                rig.close(); // rbd_close: the image's lock and watch go with it
            }
            if (clusterDir == null) {
                run(List.of("rbd", "-c", conf, "rm", "--no-progress", "rbd/" + image));
            }
        } finally {
            if (clusterDir != null) {
                run(List.of(script.toString(), "stop", clusterDir.toString()));
            }
        }
    }

    @Benchmark
    @OperationsPerInvocation(OPS)
    public void io4k() {
        rig.run(loop);
    }

    private void closedLoop() {
        issued = 0;
        completed = 0;
        for (int k = 0; k < DEPTH; k++) {
            issue(k);
        }
        while (completed < OPS) {
            ctx.poll(true);
        }
        if (error != 0) {
            throw new IllegalStateException("an rbd request failed: " + error);
        }
    }

    private void issue(int k) {
        long x = seed; // xorshift64
        x ^= x << 13;
        x ^= x >>> 7;
        x ^= x << 17;
        seed = x;
        long block = (x >>> 11) & (BLOCKS - 1);
        issued++;
        if (write) {
            blk.pwritev(block * BlockRig.REQ, BlockRig.REQ, iov[k], 0, slots[k]);
        } else {
            blk.preadv(block * BlockRig.REQ, BlockRig.REQ, iov[k], 0, slots[k]);
        }
    }

    /** One request slot: its completion counts and issues the slot's next request. */
    private final class Slot implements BlockCompletion {
        final int index;

        Slot(int index) {
            this.index = index;
        }

        @Override
        public void complete(int ret) {
            if (ret < 0) {
                error = ret;
            }
            completed++;
            if (issued < OPS) {
                issue(index);
            }
        }
    }

    /** Walks up from the working directory to the project's {@code contrib/ceph-one-node.sh}. */
    private static Path findScript() {
        for (Path p = Path.of("").toAbsolutePath(); p != null; p = p.getParent()) {
            Path s = p.resolve("contrib/ceph-one-node.sh");
            if (Files.isRegularFile(s)) {
                return s;
            }
        }
        throw new IllegalStateException("contrib/ceph-one-node.sh not found above " + Path.of("").toAbsolutePath()
                + "; run from the project or pass -Dvblk.bench.rbd.conf=FILE");
    }

    /** Runs a command (bounded: 5 minutes) and returns its stdout; a non-zero exit is an exception with its stderr. */
    private static String run(List<String> cmd) throws IOException, InterruptedException {
        Path out = Files.createTempFile("vblk-bench-out", ".txt");
        Path err = Files.createTempFile("vblk-bench-err", ".txt");
        try {
            Process p = new ProcessBuilder(new ArrayList<>(cmd)).redirectOutput(out.toFile())
                    .redirectError(err.toFile()).redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null")
                            .toFile())).start();
            if (!p.waitFor(5, TimeUnit.MINUTES)) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
                throw new IllegalStateException(String.join(" ", cmd) + " did not finish within 5 minutes");
            }
            if (p.exitValue() != 0) {
                throw new IllegalStateException(String.join(" ", cmd) + " failed (exit " + p.exitValue() + "): "
                        + Files.readString(err, StandardCharsets.UTF_8));
            }
            return Files.readString(out, StandardCharsets.UTF_8);
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
        }
    }
}
