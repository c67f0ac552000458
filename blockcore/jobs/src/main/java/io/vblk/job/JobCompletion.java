package io.vblk.job;

import io.vblk.aio.AioContextLock;
import io.vblk.aio.ClosedContextException;
import io.vblk.aio.Errno;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The end of one {@link Job}, in the main loop: the deferred completion that
 * runs prepare, commit or abort and clean, then concludes and (optionally)
 * dismisses the job. QEMU's {@code job_exit} / {@code job_completed},
 * {@code job_finalize_single}, {@code job_conclude} and {@code job_do_dismiss}
 * (job.c), with the {@code cancel} of a PENDING job and the {@code finalize}
 * verb, which enter the same path.
 *
 * <p>While any of this runs the job is <em>completing</em>: QEMU runs a job's
 * completion under the BQL, where no QMP command lands; here a verb delivered
 * by a BH can run inside a nested poll of that completion (the drained
 * section of {@code prepare}). Cancelling or finalizing there would conclude
 * the job under its own prepare (the graph changed, yet the job reported
 * cancelled), so both verbs are refused while completing; and the job's nodes
 * may not move into an IOThread meanwhile ({@link JobParent}).
 */
final class JobCompletion {
    private static final Logger LOG = LoggerFactory.getLogger(Job.class);

    private final Job job;
    /** The completion (prepare/commit/abort/clean) is running in the main loop. */
    private volatile boolean completing;

    JobCompletion(Job job) {
        this.job = job;
    }

    boolean isCompleting() {
        return completing;
    }

    /** The deferred completion: QEMU's {@code block_job_defer_to_main_loop_bh} / {@code job_exit}. */
    void completedInMain() {
        completing = true;
        try (AioContextLock.Held h = Job.ownIfForeign(job.context())) {
            boolean failed = job.ret() < 0 || (job.isCancelled() && !job.gracefulEnd());
            if (failed && job.ret() == 0) {
                job.fail(-Errno.ECANCELED, "cancelled");
            }
            if (failed) {
                job.transition(JobStatus.ABORTING);
                safely("abort", job::abort);
                cleanAndConclude();
                return;
            }
            job.transition(JobStatus.WAITING);
            job.transition(JobStatus.PENDING);
            if (job.options().autoFinalize()) {
                finalizeNow();
            } else {
                job.settled().complete(JobStatus.PENDING);
            }
        } finally {
            completing = false;
        }
    }

    /** Refuses a verb that would conclude the job under its own completion (see the class comment). */
    void refuseWhileCompleting(String what) {
        if (completing) {
            throw new JobException("job '" + job.id() + "' is completing: too late to " + what);
        }
    }

    /** The {@code cancel} verb on a PENDING job: abort, clean and conclude now. */
    void cancelPending() {
        job.fail(-Errno.ECANCELED, "cancelled");
        completing = true;
        try {
            job.transition(JobStatus.ABORTING);
            safely("abort", job::abort);
            cleanAndConclude();
        } finally {
            completing = false;
        }
    }

    /** The {@code finalize} verb: QEMU's {@code job_finalize}. */
    void finalizeVerb() {
        completing = true;
        try {
            finalizeNow();
        } finally {
            completing = false;
        }
    }

    /** QEMU's {@code job_finalize_single}: prepare, then commit or abort, then clean. */
    private void finalizeNow() {
        int r;
        try {
            r = job.prepare();
        } catch (ClosedContextException e) {
            throw e;
        } catch (RuntimeException e) {
            LOG.error("job '{}': prepare failed", job.id(), e);
            job.setError(e.getMessage());
            r = -Errno.EIO;
        }
        if (r < 0) {
            job.setRet(r);
            if (job.error() == null) {
                job.setError("prepare failed: " + Errno.name(-r));
            }
            job.transition(JobStatus.ABORTING);
            safely("abort", job::abort);
        } else {
            safely("commit", job::commit);
        }
        cleanAndConclude();
    }

    private void cleanAndConclude() {
        safely("clean", job::clean);
        job.detachEdges();
        job.transition(JobStatus.CONCLUDED);
        LOG.debug("job '{}' concluded: ret={} {}", job.id(), job.ret(), job.error() == null ? "" : job.error());
        if (job.options().autoDismiss()) {
            dismissNow();
        }
        job.ready().completeExceptionally(new JobException("job '" + job.id() + "' concluded without becoming ready"));
        job.concluded().complete(job.ret());
        job.settled().complete(job.status());
    }

    /** Runs a driver callback; a failure is recorded as the job's error (and -EIO) instead of escaping. */
    private void safely(String what, Runnable r) {
        try {
            r.run();
        } catch (ClosedContextException e) {
            throw e;
        } catch (RuntimeException e) {
            LOG.error("job '{}': {} failed", job.id(), what, e);
            if (job.error() == null) {
                job.setError(what + " failed: " + e.getMessage());
            }
            if (job.ret() == 0) {
                job.setRet(-Errno.EIO);
            }
        }
    }

    /** QEMU's {@code job_do_dismiss}: the job leaves the list. */
    void dismissNow() {
        job.transition(JobStatus.NULL);
        job.runner().delete();
        job.jobs().forget(job);
    }
}
