package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.job.BlockJobs;
import io.vblk.job.Job;
import io.vblk.job.JobOptions;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;

/**
 * Bug 011 (QEMU eca0f3524a, "backup: don't acquire aio_context in
 * backup_clean"): a job's clean step takes its context's lock a second time
 * around a step that drains, and the main loop deadlocks with the IOThread.
 *
 * <p>vblk has no backup job; its jobs that drop a filter node in their clean
 * step — stream's {@code copy-on-read} filter, a mirror's {@code mirror_top}
 * when it does not pivot — are the equivalent of {@code backup_clean} dropping
 * the {@code backup-top} filter ({@code bdrv_backup_top_drop}). The scenario
 * streams a qcow2 chain base ← mid ← top into top while top (with its
 * device's backend) lives in IOThread io0. The job runs in io0; its
 * completion runs in the main loop ({@code job_exit}), which acquires io0's
 * lock once for prepare, commit and clean.
 * <ul>
 * <li>Fixed: clean drops the filter under a drained section of top; the
 *     drain schedules top's drain-begin hook in io0 and waits with
 *     {@code pollWhile}, which releases io0's lock (depth 1 → 0) while the
 *     main loop sleeps; io0 takes it, runs the hook, kicks the main loop, and
 *     the job concludes: top is backed by base, mid is gone, the data
 *     reads back unchanged.</li>
 * <li>Legacy ({@link LegacyBehavior#ACQUIRE_CONTEXT_IN_JOB_CLEAN}): the clean
 *     step acquires io0's lock again before dropping the filter, as
 *     {@code backup_clean} did (depth 2). The wait releases it once, the main
 *     loop still holds it at depth 1, and io0 blocks on the lock in front of
 *     the hook the main loop waits for — the watchdog's dump shows the lock
 *     held by the main loop at depth 1 with io0 waiting.</li>
 * </ul>
 * Nothing else differs: no seam is needed, the drain's own hook in io0 is
 * the work the main loop waits for. (The companion fix b660a84bbb, the
 * locking of {@code job_txn_apply}, has no counterpart: vblk has no job
 * transactions.)
 */
public final class Bug011JobCleanAcquire implements Scenario {
    private static final long SIZE = 1L << 20;
    private static final int CLUSTER = 65536;

    @Override
    public String id() {
        return "011-job-clean-acquire";
    }

    @Override
    public String title() {
        return "job-clean-double-acquire";
    }

    @Override
    public String upstreamCommit() {
        return "eca0f3524a";
    }

    @Override
    public String summary() {
        return "a job's clean acquired its context again before dropping its filter; the drain released one hold "
                + "and the IOThread never got the lock";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: the main loop (the job's completion, QEMU's job_exit) and IOThread io0 (the job and its "
                        + "nodes live there).",
                "1. A stream job copies mid's data into top, whose device backend lives in io0; it runs in io0 and "
                        + "defers its completion to the main loop.",
                "2. The completion acquires io0's lock once (job_exit) and runs prepare, commit and clean.",
                "3. Clean drops the job's copy-on-read filter (the backup-top drop of backup_clean): a drained "
                        + "section of top, whose drain-begin hook runs in io0; pollWhile releases io0's lock once "
                        + "and sleeps until io0 ran it.",
                "Fixed (eca0f3524a): clean does not acquire again, the one release lets io0 run the hook, the job "
                        + "concludes.",
                "Legacy (ACQUIRE_CONTEXT_IN_JOB_CLEAN): clean acquires io0's lock again around the drop, as "
                        + "backup_clean did; the lock stays held at depth 1 while the main loop waits, io0 blocks on "
                        + "it: the watchdog reports the hang and the dump shows the holder and depth.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        Path dir = Files.createTempDirectory("vblk-bug011-");
        try {
            Path top = Seed000StreamCommit.chain(dir);
            LegacySwitches sw = new LegacySwitches();
            Duration ok = Duration.ofSeconds(60);
            try (MainLoop loop = new MainLoop(sw); BlockLayer layer = new BlockLayer(loop);
                 BlockJobs jobs = new BlockJobs(layer)) {
                IOThread io0 = loop.newIOThread("io0");
                byte[] expected = loop.watchdog(ok).call("open the chain, write it, move it to io0", () -> {
                    BlockNode t = layer.openImage("top", top, "qcow2", false);
                    BlockBackend dev = layer.newBackend("dev");
                    dev.attach(t);
                    t.unref();
                    BlockNode m = t.child(ChildRole.BACKING);
                    io.vblk.block.BlockReopen.setReadOnly(m, false);
                    Seed000StreamCommit.write(m, SIZE - CLUSTER, Seed000StreamCommit.fill(CLUSTER, 11));
                    io.vblk.block.BlockReopen.setReadOnly(m, true);
                    Seed000StreamCommit.write(t, 0, Seed000StreamCommit.fill(CLUSTER, 5));
                    byte[] data = Seed000StreamCommit.read(t, 0, (int) SIZE);
                    layer.setAioContext(t, io0.context());
                    return data;
                });
                sw.set(LegacyBehavior.ACQUIRE_CONTEXT_IN_JOB_CLEAN, legacy);
                Job stream = loop.watchdog(ok).call("block-stream top (in io0) down to base", () ->
                        jobs.stream("stream0", layer.node("top"), layer.node("top-backing2"), JobOptions.defaults()));
                Staged<Integer> done = Staged.await(loop.watchdog(hangBound), "stream job concluded", stream.concluded());
                if (done.hung()) {
                    unwind(loop, io0.context(), stream, ok);
                    return done.result(this, legacy, hangBound, "the stream's clean holds io0's lock twice; the filter "
                            + "drop's pollWhile releases it once and io0 never runs the drain hook");
                }
                String check = loop.watchdog(ok).call("check", () -> {
                    BlockNode t = layer.node("top");
                    if (done.result() != 0) {
                        return "stream failed: " + stream.error();
                    }
                    if (layer.backends().get(0).root() != t) {
                        return "device on '" + layer.backends().get(0).root().name() + "', expected top (filter left)";
                    }
                    if (layer.node("top-backing") != null) {
                        return "mid was not dropped by the stream";
                    }
                    if (t.child(ChildRole.BACKING) != layer.node("top-backing2")) {
                        return "top is not backed by base";
                    }
                    try (AioContextLock.Held h = t.context().acquire()) {
                        return Arrays.equals(expected, Seed000StreamCommit.read(t, 0, (int) SIZE)) ? null
                                : "data differs after the stream";
                    }
                });
                if (check != null) {
                    throw new IllegalStateException(id() + ": " + check);
                }
                return done.result(this, legacy, hangBound, "the stream job concluded in io0; top now backed by base");
            }
        } finally {
            Seed000StreamCommit.deleteTree(dir);
        }
    }

    /**
     * Ends the diagnosed hang so the loops stop when the scenario closes
     * them (closing a main loop stuck in the clean's drain would leave it
     * running until its contexts are closed under it). A main-context BH,
     * which the stuck wait still runs, hands io0's lock over whenever io0
     * waits for it: it releases every level the main loop holds and takes
     * them back; the lock is fair, so io0, queued on it, runs first. It
     * reschedules itself until nothing waits in the main loop any more: the
     * drain has ended, the clean returned and the job concluded.
     */
    private static void unwind(MainLoop loop, AioContext ctx, Job stream, Duration bound) {
        Runnable[] pump = new Runnable[1];
        pump[0] = () -> {
            if (loop.aioWait().waiters() == 0) {
                return;
            }
            AioContextLock lock = ctx.lock();
            if (lock.isHeldByCurrentThread() && lock.hasWaiters()) {
                int held = lock.holdCount();
                for (int i = 0; i < held; i++) {
                    lock.release();
                }
                for (int i = 0; i < held; i++) {
                    lock.acquire(); // released by the clean's own lock sections as they close
                }
            }
            loop.run("unwind: hand io0's lock over", pump[0]);
        };
        loop.run("unwind: hand io0's lock over", pump[0]);
        loop.watchdog(bound).await("the diagnosed hang to unwind", stream.concluded());
    }
}
