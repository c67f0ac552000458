package io.vblk.guest.scenario;

import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.block.IoVec;
import io.vblk.block.qcow2.Qcow2;
import io.vblk.job.BlockJobs;
import io.vblk.job.Job;
import io.vblk.job.JobOptions;

import com.sun.jna.Memory;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;

/**
 * Seed 000, first trace: a stream job's completion and the drained section
 * inside commit start ({@code qmp_block_commit → commit_active_start →
 * bdrv_reopen → ... aio_poll → block_job_defer_to_main_loop_bh →
 * stream_complete}).
 *
 * <p>A device's backend sits on {@code top} of the chain base ← mid ← top.
 * {@code block-stream} (top, base = base) and {@code block-commit} (top into
 * base) are issued back to back in one main-loop iteration, as a management
 * tool would send them: when the stream returns, its only copy (mid's data
 * sits in the last cluster of the disk) is in flight. Commit start drains
 * top — the reopen's drained section — and then stops every job on the
 * chain before it resolves it.
 * <ol>
 * <li>The drained section's {@code pollWhile} waits for the stream job,
 *     which is busy; in the poll where its last write completes, the job
 *     ends its run and defers its completion to the main loop as a BH.</li>
 * <li>Fixed: the wait polls once more because that poll made progress, the
 *     completion BH runs inside the drained section, the stream is
 *     completed (top now backed by base, mid dropped), commit start finds
 *     no job to stop and commits top into base; the device pivots to base.</li>
 * <li>Legacy ({@link LegacyBehavior#POLL_WHILE_WITHOUT_BH_DRAIN}): the wait
 *     returns as soon as nothing is in flight, the BH stays pending; the
 *     job is neither paused (its run is over) nor completed, and the loop
 *     that stops it ("enter it, drain its I/O") drains nothing — in_flight
 *     is 0 — so it never polls the main loop where the BH waits: the main
 *     loop spins there forever.</li>
 * </ol>
 * Everything runs in the main loop, so the staging needs no seam.
 */
public final class Seed000StreamCommit implements Scenario {
    private static final long SIZE = 1L << 20;
    private static final int CLUSTER = 65536;

    @Override
    public String id() {
        return "seed-000";
    }

    @Override
    public String title() {
        return "bh-in-nested-poll";
    }

    @Override
    public String upstreamCommit() {
        return "91af091f92";
    }

    @Override
    public String summary() {
        return "BDRV_POLL_WHILE stopped at in_flight 0 with a block job's completion BH pending: stream "
                + "completing inside commit start's drained section hangs the main loop";
    }

    @Override
    public String explain() {
        return "Seed 000 (91af091f92, \"block: Drain BH in bdrv_drained_begin\"), first trace.\n"
                + "Threads: the main loop only (the chain base <- mid <- top and both jobs live in the main "
                + "context); no seam is needed.\n"
                + "Steps: block-stream (top, base) and block-commit (top into base) are issued in one main-loop "
                + "iteration; commit start drains top (the reopen's drained section) while the stream's last "
                + "copy is in flight. The drained section's pollWhile runs the poll in which that copy "
                + "completes; the stream job then ends its run and defers its completion to the main loop as a "
                + "BH.\n"
                + "Fix: pollWhile polls once more because that poll made progress, so the completion BH runs "
                + "inside the drained section; the stream completes, commit finds no job to stop, commits and "
                + "pivots the device to base.\n"
                + "Legacy (POLL_WHILE_WITHOUT_BH_DRAIN) reverts only the loop condition: pollWhile returns as "
                + "soon as the condition is false, the BH stays pending, the stream is neither paused nor "
                + "completed, and the loop that stops it drains nothing (in_flight is 0) and never polls the "
                + "main loop where the BH waits: the watchdog reports the main loop spinning.";
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        Path dir = Files.createTempDirectory("vblk-seed000-");
        try {
            Path top = chain(dir);
            LegacySwitches sw = new LegacySwitches();
            Duration ok = Duration.ofSeconds(60);
            try (MainLoop loop = new MainLoop(sw); BlockLayer layer = new BlockLayer(loop);
                 BlockJobs jobs = new BlockJobs(layer)) {
                byte[] expected = loop.watchdog(ok).call("open the chain and write it", () -> {
                    BlockNode t = layer.openImage("top", top, "qcow2", false);
                    BlockBackend dev = layer.newBackend("dev");
                    dev.attach(t);
                    t.unref();
                    BlockNode m = t.child(ChildRole.BACKING);
                    io.vblk.block.BlockReopen.setReadOnly(m, false);
                    write(m, SIZE - CLUSTER, fill(CLUSTER, 7));  // mid: the last cluster only
                    io.vblk.block.BlockReopen.setReadOnly(m, true);
                    write(t, 0, fill(CLUSTER, 3));                // top: its own first cluster
                    return read(t, 0, (int) SIZE);
                });
                sw.set(LegacyBehavior.POLL_WHILE_WITHOUT_BH_DRAIN, legacy);
                Staged<Job> s = Staged.await(loop.watchdog(hangBound), "block-stream + block-commit",
                        loop.submit("block-stream + block-commit", () -> {
                            BlockNode t = layer.node("top");
                            BlockNode b = layer.node("top-backing2");
                            jobs.stream("stream0", t, b, JobOptions.defaults());
                            return jobs.commit("commit0", t, b, JobOptions.defaults());
                        }));
                if (s.hung()) {
                    // diagnosed; turning the switch off lets the spinning loop poll again, so teardown is quick
                    sw.set(LegacyBehavior.POLL_WHILE_WITHOUT_BH_DRAIN, false);
                    return s.result(this, legacy, hangBound, "stream job neither paused nor completed: its completion BH "
                            + "never runs (pollWhile stopped with in_flight 0)");
                }
                Job commit = s.result();
                loop.watchdog(ok).await("commit ready", commit.ready());
                loop.watchdog(ok).run("block-job-complete", () -> jobs.complete("commit0"));
                int ret = loop.watchdog(ok).await("commit concluded", commit.concluded());
                String check = loop.watchdog(ok).call("check", () -> {
                    BlockBackend dev = layer.backends().get(0);
                    if (ret != 0) {
                        return "commit failed: " + commit.error();
                    }
                    if (!"top-backing2".equals(dev.root().name())) {
                        return "device on '" + dev.root().name() + "', expected base";
                    }
                    if (layer.node("top-backing") != null) {
                        return "mid was not dropped by the stream";
                    }
                    return Arrays.equals(expected, read(dev.root(), 0, (int) SIZE)) ? null : "data differs after the pivot";
                });
                if (check != null) {
                    throw new IllegalStateException(id() + ": " + check);
                }
                return s.result(this, legacy, hangBound, "stream completed inside the drained section; commit pivoted "
                        + "the device to base");
            }
        } finally {
            deleteTree(dir);
        }
    }

    /** base.qcow2 (1 MiB) <- mid.qcow2 <- top.qcow2 in {@code dir}, 64 KiB clusters; returns top. */
    static Path chain(Path dir) throws java.io.IOException {
        Path base = dir.resolve("base.qcow2");
        Path mid = dir.resolve("mid.qcow2");
        Path top = dir.resolve("top.qcow2");
        Qcow2.create(base, SIZE);
        Qcow2.create(mid, 0, CLUSTER, base.toString(), "qcow2");
        Qcow2.create(top, 0, CLUSTER, mid.toString(), "qcow2");
        return top;
    }

    static byte[] fill(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (seed + i * 13 + (i >> 8));
        }
        return b;
    }

    static void write(BlockNode n, long off, byte[] data) {
        Memory m = new Memory(data.length);
        m.write(0, data, 0, data.length);
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), data.length);
        int r = n.pwriteSync(off, data.length, v, 0);
        if (r < 0) {
            throw new IllegalStateException("writing '" + n.name() + "' at " + off + " failed: " + r);
        }
    }

    static byte[] read(BlockNode n, long off, int len) {
        Memory m = new Memory(len);
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), len);
        int r = n.preadSync(off, len, v);
        if (r < 0) {
            throw new IllegalStateException("reading '" + n.name() + "' at " + off + " failed: " + r);
        }
        byte[] b = new byte[len];
        m.read(0, b, 0, len);
        return b;
    }

    static void deleteTree(Path dir) {
        try (var s = Files.walk(dir)) {
            s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (java.io.IOException e) {
            // best effort: a temp directory
        }
    }
}
