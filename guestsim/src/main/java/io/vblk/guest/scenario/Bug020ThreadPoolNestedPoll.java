package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioWait;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.LoopHold;
import io.vblk.aio.MainLoop;
import io.vblk.aio.ThreadPool;
import io.vblk.aio.ThreadPoolJob;
import io.vblk.aio.Watchdog;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntSupplier;

/**
 * Bug 020, QEMU 3c80ca158c "thread-pool: avoid deadlock in nested aio_poll()
 * calls": two thread-pool jobs finish before their completion BH runs, and
 * the first one's completion polls for the second, which only that BH can
 * complete.
 */
public final class Bug020ThreadPoolNestedPoll implements Scenario {
    @Override
    public String id() {
        return "020-thread-pool-nested-poll";
    }

    @Override
    public String title() {
        return "completion-bh-reschedules-itself";
    }

    @Override
    public String upstreamCommit() {
        return "3c80ca158c";
    }

    @Override
    public String summary() {
        return "thread_pool_completion_bh ran a completion without scheduling itself: a completion that aio_poll()ed "
                + "for another job finished in the same batch waited for a BH nobody would run";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: IOThread io0 (submits the jobs and runs their completions), one thread-pool worker "
                        + "('scenario-worker-0': a pool of one, so jobs finish in submission order), the main loop.",
                "Steps: io0 is held before its next poll (LoopHold, the same seam in both runs). Job A, then job B "
                        + "are submitted with io0 as their context, then job C with the main loop's: C starts only "
                        + "after the worker pushed B, and its start tells the scenario that A and B both wait in io0's "
                        + "completion list. io0 is let go: its completion BH (ThreadPool.Completer, QEMU's "
                        + "thread_pool_completion_bh) runs A's completion first, which waits with AioWait.pollWhile in "
                        + "io0 until B's completion ran (a synchronous wrapper inside a callback, as the nested "
                        + "aio_poll of the bug report).",
                "Fix: before a completion with others behind it, the BH schedules itself, so A's nested poll runs it "
                        + "and the same batch goes on: B completes, A's wait ends.",
                "Legacy (" + LegacyBehavior.THREAD_POOL_BH_NOT_RESCHEDULED + ") drops exactly that schedule: B waits in "
                        + "the batch the outer BH run holds, nothing is scheduled, and io0 sleeps in A's nested poll "
                        + "until the watchdog reports the hang. Another job finishing later (D) schedules the BH, whose "
                        + "nested run completes B, and io0 unwinds: any later completion rescued QEMU too, which is why "
                        + "it hung only when nothing else was in flight.");
    }

    /** A pool job: its work on the worker, its completion in its context. */
    private static final class Job extends ThreadPoolJob {
        private final IntSupplier work;
        private final Runnable completion;

        Job(IntSupplier work, Runnable completion) {
            this.work = work;
            this.completion = completion;
        }

        @Override
        protected int work() {
            return work.getAsInt();
        }

        @Override
        protected void complete(int ret) {
            completion.run();
        }
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.THREAD_POOL_BH_NOT_RESCHEDULED, legacy);
        ThreadPool pool = new ThreadPool("scenario-worker", 1);
        try (MainLoop loop = new MainLoop("main-loop", sw)) {
            Watchdog ok = loop.watchdog(Duration.ofSeconds(30));
            IOThread io0 = loop.newIOThread("io0", 0);
            AioContext ctx0 = io0.context();
            AtomicBoolean bCompleted = new AtomicBoolean();
            CompletableFuture<Boolean> aCompleted = new CompletableFuture<>();
            CountDownLatch bPushed = new CountDownLatch(1);
            Job a = new Job(() -> 0, () -> aCompleted.complete(AioWait.pollWhile(ctx0, () -> !bCompleted.get())));
            Job b = new Job(() -> 0, () -> bCompleted.set(true));
            Job c = new Job(() -> {
                bPushed.countDown(); // the worker pushed A, then B, before it took C
                return 0;
            }, () -> { });
            LoopHold io0Held = LoopHold.atNextPoll(ctx0);
            long t0;
            try {
                ctx0.aioNotify();
                io0Held.awaitHeld(ok, "io0 held before its next poll");
                pool.submit(ctx0, a);
                pool.submit(ctx0, b);
                pool.submit(loop.context(), c);
                ok.await("jobs A and B finished, both in io0's completion list", bPushed);
                t0 = System.nanoTime();
            } finally {
                io0Held.release();
            }
            Staged<Boolean> wait = Staged.await(loop.watchdog(hangBound), "job A's completion, polling for job B's", aCompleted);
            if (wait.hung()) {
                boolean stuck = !bCompleted.get();
                pool.submit(ctx0, new Job(() -> 0, () -> { })); // D: its push schedules the BH, which completes B
                ok.await("A's completion after a later job's", aCompleted);
                return wait.result(this, legacy, hangBound, (stuck ? "B's completion sat in the batch the outer BH "
                        + "run held; " : "") + "a later job's completion ran the BH and unwound io0");
            }
            if (!bCompleted.get() || !wait.result()) {
                throw new IllegalStateException(id() + ": A's completion did not wait for B; not staged");
            }
            return new ScenarioResult(id(), title(), legacy, false, System.nanoTime() - t0, hangBound,
                    "A's nested poll ran the rescheduled completion BH and B completed inside it", null);
        } finally {
            pool.shutdown();
        }
    }
}
