package io.vblk.guest.scenario;

import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.job.BlockJobs;
import io.vblk.job.JobOptions;
import io.vblk.job.MirrorJob;
import io.vblk.job.MirrorOp;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * Bug 010 (QEMU ce8cabbd17, "mirror: Wait only for in-flight operations"):
 * a mirror op that found no free buffer slot waited on some op of
 * {@code ops_in_flight} — but an op is listed before it holds slots, so the
 * one it picked could be itself or another waiter, and nobody woke either.
 *
 * <p>The scenario mirrors a 1 MiB raw disk to a raw target in the main loop
 * with 256 KiB steps and a {@code buf-size} of one 64 KiB slot: each step
 * lists four ops (op0..op3) and starts them in order. op0 takes the slot and
 * reads; op1, op2 and op3 find no free slot and wait on op0 — three ops in
 * the "wait for a free slot" path before any of them issued I/O. When op0
 * ends, the step seam ({@link MirrorJob.OpSeam}, step "restart-waiters",
 * armed once in both runs) lets its waiters retry newest first, as a
 * scheduler may: op3 takes the slot, op2 and op1 look for an op to wait on.
 * <ul>
 * <li>Fixed: only an op that holds slots qualifies ({@code is_in_flight}):
 *     both wait on op3, retry when it ends, and the job reaches READY; the
 *     target then reads back equal to the source.</li>
 * <li>Legacy ({@link LegacyBehavior#MIRROR_WAITS_ON_ANY_OP}): the first
 *     listed op qualifies: op1, holding nothing. op2 waits on op1 and op1 on
 *     itself; op3 ends and wakes nobody. The step never ends, the job never
 *     reaches READY, and the watchdog's dump shows the ops waiting on
 *     each other with every slot free.</li>
 * </ul>
 */
public final class Bug010MirrorWaitInFlight implements Scenario {
    private static final int SIZE = 1 << 20;
    private static final int SLOT = 65536;

    @Override
    public String id() {
        return "010-mirror-wait-in-flight";
    }

    @Override
    public String title() {
        return "mirror-op-waits-on-itself";
    }

    @Override
    public String upstreamCommit() {
        return "ce8cabbd17";
    }

    @Override
    public String summary() {
        return "a mirror op waiting for a free slot picked an op that held none (itself, or another waiter) and "
                + "nobody woke it: the job never reached READY";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: the main loop only; the mirror job, its copy ops and the disk all live in it (QEMU: the "
                        + "job coroutine and one coroutine per MirrorOp in the job's AioContext).",
                "Steps: 1. A mirror of a 1 MiB raw disk starts with 256 KiB steps and buf-size 64 KiB: one buffer slot. "
                        + "Each step lists four ops in ops_in_flight (mirror_perform) before any holds a slot, then "
                        + "starts them in order (mirror_co_read).",
                "2. op0 takes the slot and reads; op1, op2, op3 find no free slot and wait "
                        + "(mirror_wait_for_free_in_flight_slot) on op0: three ops in the wait path before any "
                        + "issued I/O.",
                "3. op0 ends and restarts its waiters; the step seam 'restart-waiters' (armed once, in both runs) "
                        + "lets them run newest first: op3 takes the slot, then op2 and op1 each pick an op to "
                        + "wait on.",
                "Fixed (ce8cabbd17): only ops with is_in_flight set (they hold slots and will free them) "
                        + "qualify: op2 and op1 wait on op3, retry when it ends, and the job reaches READY; the "
                        + "target then equals the source.",
                "Legacy (MIRROR_WAITS_ON_ANY_OP) reverts that check only: the first listed op qualifies, op1, "
                        + "which holds nothing. op2 waits on op1, op1 on itself, op3 ends waking nobody: every slot "
                        + "is free and no op runs. The job never reaches READY; the watchdog reports the hang and "
                        + "its dump shows ops_in_flight with the ops waiting on each other.",
                "After the diagnosis the scenario turns the switch off and restarts the stuck waiters (an unwind "
                        + "nobody does in QEMU), so the job ends and the loop closes.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        Path dir = Files.createTempDirectory("vblk-bug010-");
        try {
            byte[] data = Seed000StreamCommit.fill(SIZE, 10);
            Path src = dir.resolve("source.raw");
            Path dst = dir.resolve("target.raw");
            Files.write(src, data);
            Files.write(dst, new byte[SIZE]);
            LegacySwitches sw = new LegacySwitches();
            Duration ok = Duration.ofSeconds(60);
            try (MainLoop loop = new MainLoop(sw); BlockLayer layer = new BlockLayer(loop);
                 BlockJobs jobs = new BlockJobs(layer)) {
                sw.set(LegacyBehavior.MIRROR_WAITS_ON_ANY_OP, legacy);
                WaitLog log = new WaitLog();
                MirrorJob mirror = loop.watchdog(ok).call("blockdev-mirror with one buffer slot", () -> {
                    BlockNode s = layer.openImage("source", src, "raw", false);
                    BlockBackend dev = layer.newBackend("dev");
                    dev.attach(s);
                    s.unref();
                    BlockNode t = layer.openImage("target", dst, "raw", false);
                    JobOptions o = JobOptions.defaults().withChunk(4 * SLOT).withBufSize(SLOT);
                    MirrorJob j = jobs.mirror("mirror0", s, t, null, o);
                    t.unref();
                    j.setOpSeam(log);
                    return j;
                });
                Staged<Void> ready = Staged.await(loop.watchdog(hangBound), "mirror ready", mirror.ready());
                if (ready.hung()) {
                    // diagnosed; with the switch off, the restarted waiters wait only on an op holding the slot
                    sw.set(LegacyBehavior.MIRROR_WAITS_ON_ANY_OP, false);
                    loop.watchdog(ok).run("unwind: restart the stuck slot waiters", mirror::restartSlotWaiters);
                    loop.watchdog(ok).await("mirror ready after the unwind", mirror.ready());
                    loop.watchdog(ok).run("block-job-cancel", () -> jobs.cancel("mirror0", false));
                    loop.watchdog(ok).await("mirror concluded", mirror.concluded());
                    return ready.result(this, legacy, hangBound, "the mirror never reaches READY: " + log.summary()
                            + "; every slot is free and nobody restarts them");
                }
                if (!log.sawTwoWaitersBeforeIo()) {
                    throw new IllegalStateException(id() + ": the step did not put two ops into the slot wait: "
                            + log.summary());
                }
                byte[] copy = loop.watchdog(ok).call("read the target", () ->
                        Seed000StreamCommit.read(layer.node("target"), 0, SIZE));
                loop.watchdog(ok).run("block-job-cancel", () -> jobs.cancel("mirror0", false));
                int ret = loop.watchdog(ok).await("mirror concluded", mirror.concluded());
                if (ret != 0 || !Arrays.equals(data, copy)) {
                    throw new IllegalStateException(id() + ": mirror ended with " + ret + ", target "
                            + (Arrays.equals(data, copy) ? "equal" : "differs") + ": " + mirror.describe());
                }
                return ready.result(this, legacy, hangBound, "the mirror reached READY (" + log.summary()
                        + ") and the target equals the source");
            }
        } finally {
            Seed000StreamCommit.deleteTree(dir);
        }
    }

    /**
     * The armed seam: records every slot wait, and at the first restart with
     * several waiters lets them retry newest first (once). Job context.
     */
    private static final class WaitLog implements MirrorJob.OpSeam {
        private final List<String> waits = new ArrayList<>();
        private volatile int waitersBeforeFirstRestart = -1;
        private boolean reordered;

        @Override
        public void waiting(MirrorOp op, MirrorOp on) {
            synchronized (waits) {
                waits.add("op" + op.id() + " waits on op" + on.id() + (on.isInFlight() ? "" : " (holding no slot)"));
            }
        }

        @Override
        public void restarting(MirrorOp ended, List<MirrorOp> waiters) {
            if (!reordered && waiters.size() >= 2) {
                reordered = true;
                waitersBeforeFirstRestart = waiters.size();
                Collections.reverse(waiters);
            }
        }

        boolean sawTwoWaitersBeforeIo() {
            return waitersBeforeFirstRestart >= 2;
        }

        String summary() {
            synchronized (waits) {
                List<String> l = waits.size() > 6 ? waits.subList(0, 6) : waits;
                return String.join(", ", l);
            }
        }
    }
}
