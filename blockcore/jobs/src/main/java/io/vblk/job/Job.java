package io.vblk.job;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.Errno;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockParent;
import io.vblk.block.ChildRole;
import io.vblk.block.ErrorPolicy;
import io.vblk.block.IoStatus;

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
 * <h2>Where the code lives</h2>
 * This class is the job's public face, its state and QMP verbs; the run
 * itself (pause points, sleeping, entering) is {@link JobRun}, the deferred
 * completion and its verbs' ending {@link JobCompletion}, and the parent
 * callbacks on the job's nodes {@link JobParent}. State moves only through
 * {@link #transition}, along {@link JobStatus}'s table.
 *
 * <h2>Threads</h2>
 * Run-side code executes in the job's context; verbs and the completion in
 * the main loop, holding that context's lock (once). The job follows its
 * nodes when they move to another context.
 */
public abstract class Job {
    private static final Logger LOG = LoggerFactory.getLogger(Job.class);

    private final BlockJobs jobs;
    private final String id;
    private final String type;
    private final JobOptions options;
    private final RateLimit rate = new RateLimit();
    private volatile AioContext ctx;

    private volatile JobStatus status = JobStatus.CREATED;
    private volatile boolean userPaused;
    private volatile boolean cancelled;
    private volatile boolean forceCancel;
    private volatile boolean gracefulEnd;
    private volatile int ret;
    private volatile String error;
    private volatile long progressCurrent;
    private volatile long progressTotal;
    private volatile int ioInFlight;
    private volatile boolean edgesDetached;
    private volatile IoStatus ioStatus = IoStatus.OK;

    private final List<BlockChild> edges = new CopyOnWriteArrayList<>();
    private final JobParent parent = new JobParent(this);
    private final JobRun runner;
    private final JobCompletion completion = new JobCompletion(this);
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
        this.runner = new JobRun(this, ctx);
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
        return runner.isBusy();
    }

    public boolean isPaused() {
        return runner.isPaused();
    }

    public int pauseCount() {
        return runner.pauseCount();
    }

    public boolean isCancelled() {
        return cancelled;
    }

    /** The run's result: 0, or -errno once failed or cancelled. Valid once concluded. */
    public int ret() {
        return ret;
    }

    /** QEMU's {@code BlockJob.iostatus}: failed or nospace after a stopping error, until the job is resumed. */
    public IoStatus ioStatus() {
        return ioStatus;
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
        return p instanceof JobParent ? ((JobParent) p).job() : null;
    }

    // ------------------------------------------------------------------ for the job's collaborators

    BlockJobs jobs() {
        return jobs;
    }

    JobRun runner() {
        return runner;
    }

    JobCompletion completion() {
        return completion;
    }

    RateLimit rate() {
        return rate;
    }

    void setContext(AioContext c) {
        ctx = c;
    }

    boolean gracefulEnd() {
        return gracefulEnd;
    }

    void setRet(int r) {
        ret = r;
    }

    void setError(String e) {
        error = e;
    }

    /** Records a failure, replacing any earlier result and message. */
    void fail(int r, String why) {
        ret = r;
        error = why;
    }

    /** QEMU's {@code job_state_transition}: moves along {@link JobStatus}'s table, or fails loudly. */
    void transition(JobStatus to) {
        JobStatus from = status;
        if (from == to && to != JobStatus.ABORTING) {
            return;
        }
        if (!from.canGoTo(to)) {
            throw new IllegalStateException("job '" + id + "': invalid transition " + from + " -> " + to);
        }
        status = to;
        LOG.trace("job '{}': {} -> {}", id, from, to);
        jobs.fireStatusChanged(this, from, to);
    }

    /** The job stops being a parent of its nodes (once): the end of its quiesce on them. */
    void detachEdges() {
        if (edgesDetached) {
            return;
        }
        edgesDetached = true;
        for (BlockChild e : edges) {
            e.node().detachParent(e);
        }
        edges.clear();
    }

    static AioContextLock.Held ownIfForeign(AioContext c) {
        return c.inHomeThread() ? null : c.acquire();
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

    /**
     * A request of the job failed with {@code ret}: QEMU's
     * {@code block_job_error_action}. Decides from {@code policy} (ENOSPC:
     * stop on ENOSPC, report otherwise), tells the listeners (the
     * {@code BLOCK_JOB_ERROR} event; not for a cancelled job), and for STOP
     * pauses the job as the user would — it pauses at its next pause point,
     * so the caller must pass one (re-marking the range first) — and records
     * the I/O status until {@link #resume()}. Job context.
     */
    protected final BlockErrorAction errorAction(ErrorPolicy policy, boolean read, int ret) {
        BlockErrorAction a = switch (policy) {
            case REPORT -> BlockErrorAction.REPORT;
            case IGNORE -> BlockErrorAction.IGNORE;
            case STOP -> BlockErrorAction.STOP;
            case ENOSPC -> ret == -Errno.ENOSPC ? BlockErrorAction.STOP : BlockErrorAction.REPORT;
        };
        LOG.debug("job '{}': {} error {}: {}", id, read ? "read" : "write", Errno.name(-ret), a);
        if (!cancelled) {
            jobs.fireIoError(this, read, a);
        }
        if (a == BlockErrorAction.STOP) {
            if (!userPaused) {
                userPaused = true;
                pauseRequest();
            }
            ioStatus = ret == -Errno.ENOSPC ? IoStatus.NOSPACE : IoStatus.FAILED;
        }
        return a;
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
        runner.setStepHook(hook);
    }

    /** A step's I/O finished: sleep for the speed limit if due, then pass the pause point and iterate again. */
    protected final void stepDone(long bytesDone) {
        runner.stepDone(bytesDone);
    }

    /**
     * Nothing to do until {@link #enter()} (a READY mirror waiting for guest
     * writes): QEMU's {@code job_yield}. Pauses instead if a pause is pending.
     */
    protected final void idle() {
        runner.idle();
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
        if (runner.ended()) {
            return;
        }
        ret = result;
        if (result < 0 && error == null) {
            error = why != null ? why : Errno.name(-result);
        }
        gracefulEnd = graceful;
        runner.end(completion::completedInMain);
    }

    protected final void finish(int result) {
        finish(result, null, false);
    }

    // ------------------------------------------------------------------ the run (job context)

    /** Starts the run: the first iteration runs now if the caller owns the job's context (QEMU's job_start). */
    final void start() {
        runner.start();
    }

    /**
     * Wakes the job if it sleeps or idles: QEMU's {@code job_enter}. A busy,
     * paused or finished job is left alone. Job context (or its lock).
     */
    public final void enter() {
        runner.enter();
    }

    /** QEMU's {@code job_pause}: takes effect at the next pause point; does not wake a sleeping job. */
    final void pauseRequest() {
        runner.pauseRequest();
    }

    /** QEMU's {@code job_resume}: the last resume lets a paused job go on. */
    final void resumeRequest() {
        runner.resumeRequest();
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
        return runner.pauseSync();
    }

    // ------------------------------------------------------------------ verbs (main loop)

    private void verb(JobVerb v) {
        if (!v.allowedIn(status)) {
            throw new JobException("job '" + id + "' in state '" + status.qmpName() + "' cannot accept command verb '"
                    + v.qmpName() + "'");
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
        ioStatus = IoStatus.OK; // QEMU's block_job_user_resume: block_job_iostatus_reset
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

    /**
     * The {@code block-job-cancel} verb; {@code force} cancels a READY mirror
     * without letting it finish gracefully. Refused while the completion runs
     * ({@link JobCompletion}).
     */
    public final void cancel(boolean force) {
        verb(JobVerb.CANCEL);
        completion.refuseWhileCompleting("cancel");
        if (status == JobStatus.PENDING) {
            cancelled = true;
            completion.cancelPending();
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

    /** The {@code block-job-finalize} verb (PENDING jobs whose auto-finalize is off); refused while completing. */
    public final void finalizeJob() {
        verb(JobVerb.FINALIZE);
        completion.refuseWhileCompleting("finalize");
        completion.finalizeVerb();
    }

    /** The {@code block-job-dismiss} verb (CONCLUDED jobs whose auto-dismiss is off). */
    public final void dismiss() {
        verb(JobVerb.DISMISS);
        completion.dismissNow();
    }

    // ------------------------------------------------------------------ diagnostics

    public String describe() {
        return "job '" + id + "' (" + type + ") status=" + status.qmpName() + " run=" + runner.state() + " busy="
                + runner.isBusy() + " paused=" + runner.isPaused() + " pause_count=" + runner.pauseCount() + " cancelled="
                + cancelled + " io_in_flight=" + ioInFlight + " progress=" + progressCurrent + "/" + progressTotal
                + " speed=" + rate.speed() + " ctx=" + ctx.name() + (error != null ? " error=" + error : "") + " "
                + describeDriver();
    }

    @Override
    public String toString() {
        return "Job(" + id + ", " + type + ", " + status.qmpName() + ")";
    }
}
