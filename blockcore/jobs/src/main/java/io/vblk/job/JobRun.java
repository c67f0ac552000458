package io.vblk.job;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioTimer;
import io.vblk.aio.AioWait;
import io.vblk.aio.BottomHalf;
import io.vblk.aio.ClosedContextException;
import io.vblk.aio.Errno;

import java.util.function.LongConsumer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The run of one {@link Job} in its AioContext: what QEMU's job coroutine
 * does ({@code job_co_entry}, {@code job_pause_point}, {@code job_sleep_ns},
 * {@code job_yield}, {@code job_enter}, {@code job_pause}/{@code job_resume}
 * in job.c). vblk has no coroutines, so the run is a chain of
 * {@link Job#iterate()} calls: each iteration ends in {@link #stepDone},
 * {@link #idle()} or {@link #end}, and between two iterations the run passes a
 * pause point, where a pending pause request (a drained section, the
 * {@code pause} verb) takes effect.
 *
 * <p>A job sleeping for its speed limit, or idle in READY, is not busy and
 * pauses only once it is entered again: pausing does not wake it (QEMU 2.9's
 * {@code block_job_pause}); {@link #pauseSync()} is the loop that enters it
 * until it is paused or completed.
 *
 * <p>Run-side methods execute in the job's context; pause and resume
 * requests also arrive from the main loop holding that context's lock once.
 */
final class JobRun {
    private static final Logger LOG = LoggerFactory.getLogger(Job.class);

    /** Where the run is (QEMU: what the coroutine is doing). */
    enum State { NEW, STEP, CONTINUE, SLEEPING, IDLE, PAUSED, ENDED }

    private final Job job;
    private volatile State state = State.NEW;
    private volatile int pauseCount;
    private volatile boolean paused;
    private volatile boolean busy;
    private volatile LongConsumer stepHook;
    private long steps;
    private BottomHalf enterBh;
    private AioTimer sleepTimer;
    /** The pause a context move holds between detach and attach. */
    private JobPause movePause;

    JobRun(Job job, AioContext ctx) {
        this.job = job;
        bind(ctx);
    }

    State state() {
        return state;
    }

    boolean isBusy() {
        return busy;
    }

    boolean isPaused() {
        return paused;
    }

    int pauseCount() {
        return pauseCount;
    }

    void setStepHook(LongConsumer hook) {
        stepHook = hook;
    }

    private void bind(AioContext c) {
        enterBh = c.bhNew("job-enter:" + job.id(), this::onEnterBh);
        sleepTimer = c.timerNew("job-sleep:" + job.id(), this::onWake);
    }

    /** Starts the run: the first iteration runs now if the caller owns the job's context (QEMU's job_start). */
    void start() {
        job.transition(JobStatus.RUNNING);
        state = State.CONTINUE;
        busy = true;
        AioContext ctx = job.context();
        if (ctx.inHomeThread() || ctx.lock().isHeldByCurrentThread()) {
            pausePoint();
        } else {
            enterBh.schedule();
        }
    }

    /** A step's I/O finished: sleep for the speed limit if due, then pass the pause point and iterate again. */
    void stepDone(long bytesDone) {
        LongConsumer hook = stepHook;
        if (hook != null && bytesDone > 0) {
            hook.accept(++steps);
        }
        long delay = job.rate().delayNs(System.nanoTime(), bytesDone);
        if (delay > 0 && !job.isCancelled()) {
            state = State.SLEEPING;
            busy = false;
            sleepTimer.modNs(System.nanoTime() + delay);
            kick();
            return;
        }
        state = State.CONTINUE;
        busy = true;
        enterBh.schedule();
    }

    /** Nothing to do until {@link #enter()}: QEMU's {@code job_yield}. Pauses instead if a pause is pending. */
    void idle() {
        if (shouldPause()) {
            pauseNow();
            return;
        }
        state = State.IDLE;
        busy = false;
        kick();
    }

    /** Whether the run already ended (its completion is deferred or done). */
    boolean ended() {
        return state == State.ENDED;
    }

    /**
     * Ends the run and defers {@code completion} to the main loop as a
     * one-shot BH: QEMU's {@code block_job_defer_to_main_loop} (later
     * {@code job_exit}).
     */
    void end(Runnable completion) {
        state = State.ENDED;
        busy = false; // as QEMU then: the deferred BH is nobody's in-flight work
        job.loop().context().bhScheduleOneshot("job-completion:" + job.id(), completion);
        kick();
    }

    private void onEnterBh() {
        if (state == State.CONTINUE) {
            pausePoint();
        }
    }

    private void onWake() {
        if (state == State.SLEEPING) {
            state = State.CONTINUE;
            busy = true;
            pausePoint();
        }
    }

    private boolean shouldPause() {
        return pauseCount > 0 && !job.isCancelled();
    }

    /** QEMU's {@code job_pause_point}, then the next iteration. */
    private void pausePoint() {
        if (shouldPause()) {
            pauseNow();
            return;
        }
        state = State.STEP;
        busy = true;
        try {
            job.iterate();
        } catch (ClosedContextException e) {
            throw e;
        } catch (RuntimeException e) {
            LOG.error("job '{}': iteration failed", job.id(), e);
            job.finish(-Errno.EIO, e.getMessage(), false);
        }
    }

    private void pauseNow() {
        state = State.PAUSED;
        paused = true;
        busy = false;
        job.transition(job.status() == JobStatus.READY ? JobStatus.STANDBY : JobStatus.PAUSED);
        kick();
    }

    /**
     * Wakes the job if it sleeps or idles: QEMU's {@code job_enter}. A busy,
     * paused or finished job is left alone. Job context (or its lock).
     */
    void enter() {
        State r = state;
        if (r == State.SLEEPING) {
            sleepTimer.del();
        } else if (r != State.IDLE) {
            return;
        }
        state = State.CONTINUE;
        busy = true;
        enterBh.schedule();
    }

    /** QEMU's {@code job_pause}: takes effect at the next pause point; does not wake a sleeping job. */
    void pauseRequest() {
        pauseCount++;
    }

    /** QEMU's {@code job_resume}: the last resume lets a paused job go on. */
    void resumeRequest() {
        if (pauseCount <= 0) {
            return;
        }
        if (--pauseCount == 0 && state == State.PAUSED) {
            paused = false;
            job.transition(job.status() == JobStatus.STANDBY ? JobStatus.READY : JobStatus.RUNNING);
            state = State.CONTINUE;
            busy = true;
            enterBh.schedule();
        }
    }

    /** See {@link Job#pauseSync()}: QEMU's {@code block_job_detach_aio_context} loop. */
    JobPause pauseSync() {
        pauseRequest();
        JobPause p = new JobPause(job);
        try {
            while (!paused && !job.status().isCompleted()) {
                AioContext c = job.context();
                if (c.isClosed() || job.loop().context().isClosed()) {
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
        AioWait.pollWhile(job.context(), () -> job.ioInFlight() > 0);
    }

    private void kick() {
        job.context().aioWait().kick();
    }

    /** The job's nodes leave their context: it stays paused until they arrived (block_job_detach_aio_context). */
    void detachAioContext() {
        if (movePause == null && !job.status().isCompleted()) {
            movePause = pauseSync();
        }
    }

    /**
     * The job's nodes arrived in {@code newCtx}: the job, its BH and its timer
     * follow them, a sleeping job wakes at once in its new home, and the
     * move's pause ends (QEMU's {@code block_job_attach_aio_context}).
     */
    void attachAioContext(AioContext newCtx) {
        if (job.context() != newCtx) {
            boolean wasSleeping = state == State.SLEEPING;
            enterBh.delete();
            sleepTimer.del();
            job.setContext(newCtx);
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

    /** The job is dismissed: its BH and timer go. */
    void delete() {
        enterBh.delete();
        sleepTimer.del();
    }
}
