package io.vblk.job;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.AioTimer;
import io.vblk.aio.AioWait;
import io.vblk.aio.BottomHalf;
import io.vblk.aio.ClosedContextException;
import io.vblk.aio.Errno;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockParent;
import io.vblk.block.ChildRole;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A long-running block operation: QEMU's {@code Job} (job.c) together with
 * {@code BlockJob} (blockjob.c). A job has an id, a state ({@link JobStatus},
 * moved only along QEMU's transition table), verbs ({@link JobVerb}),
 * progress, an optional speed limit, and edges to the nodes it uses: it is a
 * {@link BlockParent} of each, so a drained section of any of them pauses it.
 *
 * <h2>The run</h2>
 * QEMU runs a job as a coroutine in the job's AioContext (that of its
 * nodes). vblk runs it as a chain of {@link #iterate()} calls in that
 * context: an iteration issues I/O and, when the I/O completed, ends with
 * {@link #stepDone}, {@link #idle()} or {@link #finish}. Between iterations
 * the job passes a <em>pause point</em>: a pause request (a drained section,
 * the {@code pause} verb) takes effect there, the job is {@code paused} and
 * not {@code busy}. A job sleeping for its speed limit, or idle in READY, is
 * not busy either and pauses only once it is entered again: pausing does not
 * wake it (QEMU 2.9's {@code block_job_pause}), so code that must see the job
 * stopped uses {@link #pauseSync()}, QEMU's
 * {@code block_job_detach_aio_context} loop: "enter it, drain its I/O, until
 * it is paused or completed".
 *
 * <h2>Completion: defer to the main loop</h2>
 * The last iteration ends the run with {@link #finish}, which schedules the
 * completion as a one-shot BH in the main loop (QEMU's
 * {@code block_job_defer_to_main_loop}, later {@code job_exit}). That BH
 * takes the job's context lock and runs prepare, commit or abort, clean (the
 * graph changes), then concludes. It is not counted as activity of any node
 * (as in QEMU at the time of seed 000): what guarantees that it runs inside
 * the {@code pollWhile} of a drained section — and not later, in a nested
 * poll of an unrelated wait — is that {@link AioWait#pollWhile} keeps polling
 * while its last poll made progress (seed 000). With
 * {@link io.vblk.aio.LegacyBehavior#POLL_WHILE_WITHOUT_BH_DRAIN} the wait
 * stops as soon as the last I/O completed, the BH stays pending, and a
 * {@link #pauseSync()} loop that waits for the job to be paused or completed
 * spins forever, as {@code block_job_detach_aio_context} did.
 *
 * <h2>Threads</h2>
 * Run-side code executes in the job's context; verbs and the completion in
 * the main loop, holding that context's lock (once). The job follows its
 * nodes when they move to another context.
 */
public abstract class Job {
    private static final Logger LOG = LoggerFactory.getLogger(Job.class);

    /** Where the run is (QEMU: what the coroutine is doing). */
    enum Run { NEW, STEP, CONTINUE, SLEEPING, IDLE, PAUSED, ENDED }

    private final BlockJobs jobs;
    private final String id;
    private final String type;
    private final JobOptions options;
    private final RateLimit rate = new RateLimit();
    private volatile AioContext ctx;

    private volatile JobStatus status = JobStatus.CREATED;
    private volatile Run run = Run.NEW;
    private volatile int pauseCount;
    private volatile boolean userPaused;
    private volatile boolean paused;
    private volatile boolean busy;
    private volatile boolean cancelled;
    private volatile boolean forceCancel;
    private volatile boolean gracefulEnd;
    private volatile int ret;
    private volatile String error;
    private volatile long progressCurrent;
    private volatile long progressTotal;
    private volatile int ioInFlight;
    private volatile boolean edgesDetached;
    /** The completion (prepare/commit/abort/clean) is running in the main loop. */
    private volatile boolean completing;

    private volatile java.util.function.LongConsumer stepHook;
    private long steps;
    private BottomHalf enterBh;
    private AioTimer sleepTimer;
    private JobPause movePause;

    private final List<BlockChild> edges = new CopyOnWriteArrayList<>();
    private final Parent parent = new Parent();
    private final CompletableFuture<Void> readyFuture = new CompletableFuture<>();
    private final CompletableFuture<Integer> concludedFuture = new CompletableFuture<>();
    private final CompletableFuture<JobStatus> settledFuture = new CompletableFuture<>();

    protected Job(BlockJobs jobs, String id, String type, AioContext ctx, JobOptions options) {
        this.jobs = jobs;
        this.id = id;
        this.type = type;
        this.ctx = ctx;
        this.options = options;
        rate.setSpeed(options.speed());
        bind(ctx);
    }

    // ------------------------------------------------------------------ accessors

    public String id() {
        return id;
    }

    /** QEMU's job type: "stream", "commit", "mirror". */
    public String type() {
        return type;
    }

    public JobStatus status() {
        return status;
    }

    public AioContext context() {
        return ctx;
    }

    public BlockLayer layer() {
        return jobs.layer();
    }

    public MainLoop loop() {
        return jobs.layer().loop();
    }

    public JobOptions options() {
        return options;
    }

    public boolean isBusy() {
        return busy;
    }

    public boolean isPaused() {
        return paused;
    }

    public int pauseCount() {
        return pauseCount;
    }

    public boolean isCancelled() {
        return cancelled;
    }

    /** The run's result: 0, or -errno once failed or cancelled. Valid once concluded. */
    public int ret() {
        return ret;
    }

    /** What went wrong, or null. */
    public String error() {
        return error;
    }

    public long progressCurrent() {
        return progressCurrent;
    }

    public long progressTotal() {
        return progressTotal;
    }

    public long speed() {
        return rate.speed();
    }

    /** Completes when the job first becomes READY (mirror, active commit). */
    public CompletableFuture<Void> ready() {
        return readyFuture;
    }

    /** Completes with {@link #ret()} when the job concludes. */
    public CompletableFuture<Integer> concluded() {
        return concludedFuture;
    }

    /**
     * Completes when the run is over and its completion has run as far as it
     * goes on its own: PENDING (auto-finalize off: waiting for
     * {@link #finalizeJob()}) or CONCLUDED.
     */
    public CompletableFuture<JobStatus> settled() {
        return settledFuture;
    }

    /** The nodes this job uses (its edges as a parent). */
    public List<BlockNode> nodes() {
        List<BlockNode> l = new ArrayList<>();
        for (BlockChild e : edges) {
            l.add(e.node());
        }
        return l;
    }

    /** Whether {@code p} is the parent face of a job (so graph code can tell jobs from nodes and backends). */
    public static Job of(BlockParent p) {
        return p instanceof Parent ? ((Parent) p).job() : null;
    }

    // ------------------------------------------------------------------ driver interface

    /**
     * One iteration of the run, in the job's context: issue work and, once it
     * completed, end with {@link #stepDone}, {@link #idle()} or {@link #finish}.
     */
    protected abstract void iterate();

    /** After a successful run: make the result visible. Main loop, context lock held. 0 or -errno (then abort). */
    protected int prepare() {
        return 0;
    }

    /** The run succeeded and was prepared. */
    protected void commit() {
    }

    /** The run failed or was cancelled: undo what the job started. */
    protected void abort() {
    }

    /** Both paths end here: remove filters, restore read-only flags. */
    protected void clean() {
    }

    /** The {@code complete} verb (READY jobs only). */
    protected void onComplete() {
        throw new JobException("job '" + id + "' (" + type + ") cannot be completed; cancel it instead");
    }

    /** Driver state for dumps. */
    protected String describeDriver() {
        return "";
    }

    /** Makes this job a parent of {@code n}: it pauses while {@code n} is drained. Home context or its lock. */
    protected final BlockChild use(BlockNode n, String role) {
        BlockChild e = n.attachParent(parent, role, ChildRole.FILTERED);
        edges.add(e);
        return e;
    }

    protected final void setProgressTotal(long total) {
        progressTotal = total;
    }

    protected final void addProgress(long bytes) {
        progressCurrent += bytes;
    }

    /** Accounts a request of the job's own (QEMU: in flight on the job's BlockBackend). */
    protected final void ioStart() {
        ioInFlight++;
    }

    protected final void ioDone() {
        ioInFlight--;
        ctx.aioWait().kick();
    }

    public int ioInFlight() {
        return ioInFlight;
    }

    /**
     * Test seam: called in the job's context after every step that copied
     * data, with the number of such steps so far (so a test can cancel or
     * pause the job at a chosen point without timing). The same in every mode.
     */
    public void setStepHook(java.util.function.LongConsumer hook) {
        stepHook = hook;
    }

    /** A step's I/O finished: sleep for the speed limit if due, then pass the pause point and iterate again. */
    protected final void stepDone(long bytesDone) {
        java.util.function.LongConsumer hook = stepHook;
        if (hook != null && bytesDone > 0) {
            hook.accept(++steps);
        }
        long delay = rate.delayNs(System.nanoTime(), bytesDone);
        if (delay > 0 && !cancelled) {
            run = Run.SLEEPING;
            busy = false;
            sleepTimer.modNs(System.nanoTime() + delay);
            kick();
            return;
        }
        run = Run.CONTINUE;
        busy = true;
        enterBh.schedule();
    }

    /**
     * Nothing to do until {@link #enter()} (a READY mirror waiting for guest
     * writes): QEMU's {@code job_yield}. Pauses instead if a pause is pending.
     */
    protected final void idle() {
        if (shouldPause()) {
            pauseNow();
            return;
        }
        run = Run.IDLE;
        busy = false;
        kick();
    }

    /** The job reached READY (first time): QEMU's {@code job_transition_to_ready}. */
    protected final void transitionToReady() {
        if (status == JobStatus.RUNNING) {
            transition(JobStatus.READY);
            LOG.debug("job '{}' is ready", id);
            readyFuture.complete(null);
        }
    }

    /**
     * Ends the run: the completion is deferred to the main loop as a BH.
     * {@code graceful} marks a cancellation that still counts as success
     * (a READY mirror cancelled without force: in sync, no pivot).
     */
    protected final void finish(int result, String why, boolean graceful) {
        if (run == Run.ENDED) {
            return;
        }
        ret = result;
        if (result < 0 && error == null) {
            error = why != null ? why : Errno.name(-result);
        }
        gracefulEnd = graceful;
        run = Run.ENDED;
        busy = false; // as QEMU then: the deferred BH is nobody's in-flight work
        loop().context().bhScheduleOneshot("job-completion:" + id, this::completedInMain);
        kick();
    }

    protected final void finish(int result) {
        finish(result, null, false);
    }

    // ------------------------------------------------------------------ the run machinery (job context)

    private void bind(AioContext c) {
        enterBh = c.bhNew("job-enter:" + id, this::onEnterBh);
        sleepTimer = c.timerNew("job-sleep:" + id, this::onWake);
    }

    /** Starts the run: the first iteration runs now if the caller owns the job's context (QEMU's job_start). */
    final void start() {
        transition(JobStatus.RUNNING);
        run = Run.CONTINUE;
        busy = true;
        if (ctx.inHomeThread() || ctx.lock().isHeldByCurrentThread()) {
            pausePoint();
        } else {
            enterBh.schedule();
        }
    }

    private void onEnterBh() {
        if (run == Run.CONTINUE) {
            pausePoint();
        }
    }

    private void onWake() {
        if (run == Run.SLEEPING) {
            run = Run.CONTINUE;
            busy = true;
            pausePoint();
        }
    }

    private boolean shouldPause() {
        return pauseCount > 0 && !cancelled;
    }

    /** QEMU's {@code job_pause_point}, then the next iteration. */
    private void pausePoint() {
        if (shouldPause()) {
            pauseNow();
            return;
        }
        run = Run.STEP;
        busy = true;
        try {
            iterate();
        } catch (ClosedContextException e) {
            throw e;
        } catch (RuntimeException e) {
            LOG.error("job '{}': iteration failed", id, e);
            finish(-Errno.EIO, e.getMessage(), false);
        }
    }

    private void pauseNow() {
        run = Run.PAUSED;
        paused = true;
        busy = false;
        transition(status == JobStatus.READY ? JobStatus.STANDBY : JobStatus.PAUSED);
        kick();
    }

    /**
     * Wakes the job if it sleeps or idles: QEMU's {@code job_enter}. A busy,
     * paused or finished job is left alone. Job context (or its lock).
     */
    public final void enter() {
        Run r = run;
        if (r == Run.SLEEPING) {
            sleepTimer.del();
        } else if (r != Run.IDLE) {
            return;
        }
        run = Run.CONTINUE;
        busy = true;
        enterBh.schedule();
    }

    /** QEMU's {@code job_pause}: takes effect at the next pause point; does not wake a sleeping job. */
    final void pauseRequest() {
        pauseCount++;
    }

    /** QEMU's {@code job_resume}: the last resume lets a paused job go on. */
    final void resumeRequest() {
        if (pauseCount <= 0) {
            return;
        }
        if (--pauseCount == 0 && run == Run.PAUSED) {
            paused = false;
            transition(status == JobStatus.STANDBY ? JobStatus.READY : JobStatus.RUNNING);
            run = Run.CONTINUE;
            busy = true;
            enterBh.schedule();
        }
    }

    /**
     * Pauses the job and waits until it is paused or completed; close the
     * result to resume it. QEMU's {@code block_job_detach_aio_context} loop:
     * <pre>
     *     job_pause(job);
     *     while (!job->paused && !job_is_completed(job)) {
     *         job_drain(job);   // enter the job, then wait for its I/O (blk_drain)
     *     }
     * </pre>
     * A job whose run ended is completed only once its deferred completion BH
     * ran, so the loop relies on the I/O wait draining that BH (seed 000).
     * Main loop (holding the job's context lock) or the job's context.
     */
    public final JobPause pauseSync() {
        pauseRequest();
        JobPause p = new JobPause(this);
        try {
            while (!paused && !status.isCompleted()) {
                AioContext c = ctx;
                if (c.isClosed() || loop().context().isClosed()) {
                    throw new ClosedContextException(c.name()); // the machine is being torn down under a hang
                }
                drain();
                Thread.onSpinWait();
            }
        } catch (RuntimeException e) {
            p.close();
            throw e;
        }
        return p;
    }

    /** QEMU's {@code job_drain}: kick the job to its next pause point, then wait for its own I/O. */
    private void drain() {
        enter();
        AioWait.pollWhile(ctx, () -> ioInFlight > 0);
    }

    private void kick() {
        ctx.aioWait().kick();
    }

    // ------------------------------------------------------------------ completion (main loop)

    /** The deferred completion: QEMU's {@code block_job_defer_to_main_loop_bh} / {@code job_exit}. */
    private void completedInMain() {
        completing = true;
        try (AioContextLock.Held h = ownIfForeign(ctx)) {
            boolean failed = ret < 0 || (cancelled && !gracefulEnd);
            if (failed && ret == 0) {
                ret = -Errno.ECANCELED;
                error = "cancelled";
            }
            if (failed) {
                transition(JobStatus.ABORTING);
                safely("abort", this::abort);
                cleanAndConclude();
                return;
            }
            transition(JobStatus.WAITING);
            transition(JobStatus.PENDING);
            if (options.autoFinalize()) {
                finalizeNow();
            } else {
                settledFuture.complete(JobStatus.PENDING);
            }
        } finally {
            completing = false;
        }
    }

    private void finalizeNow() {
        int r;
        try {
            r = prepare();
        } catch (ClosedContextException e) {
            throw e;
        } catch (RuntimeException e) {
            LOG.error("job '{}': prepare failed", id, e);
            error = e.getMessage();
            r = -Errno.EIO;
        }
        if (r < 0) {
            ret = r;
            if (error == null) {
                error = "prepare failed: " + Errno.name(-r);
            }
            transition(JobStatus.ABORTING);
            safely("abort", this::abort);
        } else {
            safely("commit", this::commit);
        }
        cleanAndConclude();
    }

    private void cleanAndConclude() {
        safely("clean", this::clean);
        detachEdges();
        transition(JobStatus.CONCLUDED);
        LOG.debug("job '{}' concluded: ret={} {}", id, ret, error == null ? "" : error);
        if (options.autoDismiss()) {
            dismissNow();
        }
        readyFuture.completeExceptionally(new JobException("job '" + id + "' concluded without becoming ready"));
        concludedFuture.complete(ret);
        settledFuture.complete(status);
    }

    private void safely(String what, Runnable r) {
        try {
            r.run();
        } catch (ClosedContextException e) {
            throw e;
        } catch (RuntimeException e) {
            LOG.error("job '{}': {} failed", id, what, e);
            if (error == null) {
                error = what + " failed: " + e.getMessage();
            }
            if (ret == 0) {
                ret = -Errno.EIO;
            }
        }
    }

    private void detachEdges() {
        if (edgesDetached) {
            return;
        }
        edgesDetached = true;
        for (BlockChild e : edges) {
            e.node().detachParent(e);
        }
        edges.clear();
    }

    private void dismissNow() {
        transition(JobStatus.NULL);
        enterBh.delete();
        sleepTimer.del();
        jobs.forget(this);
    }

    // ------------------------------------------------------------------ verbs (main loop)

    private void verb(JobVerb v) {
        if (!v.allowedIn(status)) {
            throw new JobException("job '" + id + "' in state '" + status.qmpName() + "' cannot accept command verb '"
                    + v.qmpName() + "'");
        }
    }

    /**
     * QEMU runs a job's completion under the BQL, where no QMP command lands;
     * here a verb delivered by a BH can run inside a nested poll of that
     * completion (the drained section of {@code prepare}). Cancelling or
     * finalizing there would conclude the job under its own prepare (the graph
     * changed, yet the job reported cancelled), so it is refused: too late.
     */
    private void refuseWhileCompleting(String what) {
        if (completing) {
            throw new JobException("job '" + id + "' is completing: too late to " + what);
        }
    }

    /** The {@code block-job-pause} verb. */
    public final void pause() {
        verb(JobVerb.PAUSE);
        if (!userPaused) {
            userPaused = true;
            pauseRequest();
        }
    }

    /** The {@code block-job-resume} verb. */
    public final void resume() {
        verb(JobVerb.RESUME);
        if (userPaused) {
            userPaused = false;
            resumeRequest();
        }
    }

    /** The {@code block-job-set-speed} verb (0: unlimited); a sleeping job re-evaluates at once. */
    public final void setSpeed(long bytesPerSecond) {
        verb(JobVerb.SET_SPEED);
        if (bytesPerSecond < 0) {
            throw new JobException("speed must be >= 0");
        }
        rate.setSpeed(bytesPerSecond);
        enter();
    }

    /** The {@code block-job-cancel} verb; {@code force} cancels a READY mirror without letting it finish gracefully. */
    public final void cancel(boolean force) {
        verb(JobVerb.CANCEL);
        refuseWhileCompleting("cancel");
        if (status == JobStatus.PENDING) {
            cancelled = true;
            ret = -Errno.ECANCELED;
            error = "cancelled";
            completing = true;
            try {
                transition(JobStatus.ABORTING);
                safely("abort", this::abort);
                cleanAndConclude();
            } finally {
                completing = false;
            }
            return;
        }
        if (status.isCompleted()) {
            return;
        }
        cancelled = true;
        forceCancel |= force;
        if (userPaused) {
            userPaused = false;
            resumeRequest();
        }
        enter(); // a job paused by a drained section sees the cancel when the section ends
    }

    public final boolean isForceCancelled() {
        return forceCancel;
    }

    /** The {@code block-job-complete} verb (READY jobs). */
    public final void complete() {
        verb(JobVerb.COMPLETE);
        onComplete();
    }

    /** The {@code block-job-finalize} verb (PENDING jobs whose auto-finalize is off). */
    public final void finalizeJob() {
        verb(JobVerb.FINALIZE);
        refuseWhileCompleting("finalize");
        completing = true;
        try {
            finalizeNow();
        } finally {
            completing = false;
        }
    }

    /** The {@code block-job-dismiss} verb (CONCLUDED jobs whose auto-dismiss is off). */
    public final void dismiss() {
        verb(JobVerb.DISMISS);
        dismissNow();
    }

    private void transition(JobStatus to) {
        JobStatus from = status;
        if (from == to && to != JobStatus.ABORTING) {
            return;
        }
        if (!from.canGoTo(to)) {
            throw new IllegalStateException("job '" + id + "': invalid transition " + from + " -> " + to);
        }
        status = to;
        LOG.trace("job '{}': {} -> {}", id, from, to);
    }

    static AioContextLock.Held ownIfForeign(AioContext c) {
        return c.inHomeThread() ? null : c.acquire();
    }

    // ------------------------------------------------------------------ diagnostics

    public String describe() {
        return "job '" + id + "' (" + type + ") status=" + status.qmpName() + " run=" + run + " busy=" + busy + " paused="
                + paused + " pause_count=" + pauseCount + " cancelled=" + cancelled + " io_in_flight=" + ioInFlight
                + " progress=" + progressCurrent + "/" + progressTotal + " speed=" + rate.speed() + " ctx=" + ctx.name()
                + (error != null ? " error=" + error : "") + " " + describeDriver();
    }

    @Override
    public String toString() {
        return "Job(" + id + ", " + type + ", " + status.qmpName() + ")";
    }

    // ------------------------------------------------------------------ the job as a parent of its nodes

    /** QEMU's {@code child_job}: the {@link BlockParent} callbacks of a job. */
    private final class Parent implements BlockParent {
        Job job() {
            return Job.this;
        }

        @Override
        public String parentName() {
            return "job '" + id + "'";
        }

        @Override
        public void childDrainedBegin(BlockChild child) {
            pauseRequest();
        }

        @Override
        public void childDrainedEnd(BlockChild child) {
            resumeRequest();
        }

        /** QEMU's {@code child_job_drained_poll}: a job that is not busy will not issue I/O before it pauses. */
        @Override
        public boolean childDrainedPoll(BlockChild child) {
            return busy && !status.isCompleted();
        }

        /**
         * While the completion runs, its nodes may leave an IOThread (a reset in
         * a nested poll stops the dataplane) but not enter one: the completion,
         * in the main loop, holds at most the lock of the context it started in,
         * and a node moving into another IOThread under it would need a lock it
         * does not hold (and its waits would hold one they do not need).
         */
        @Override
        public String cannotSetAioContext(BlockChild child, AioContext newCtx) {
            return completing && !newCtx.isMain() ? "job '" + id + "' is completing" : null;
        }

        @Override
        public void childDetachAioContext(BlockChild child) {
            if (movePause == null && !status.isCompleted()) {
                movePause = pauseSync();
            }
        }

        @Override
        public void childAioContextChanged(BlockChild child, AioContext newCtx) {
            if (ctx != newCtx) {
                boolean wasSleeping = run == Run.SLEEPING;
                enterBh.delete();
                sleepTimer.del();
                ctx = newCtx;
                bind(newCtx);
                if (wasSleeping) {
                    sleepTimer.modNs(System.nanoTime());
                }
            }
            JobPause p = movePause;
            if (p != null) {
                movePause = null;
                p.close();
            }
        }
    }
}
