package io.vblk.daemon;

import io.vblk.aio.Errno;
import io.vblk.job.BlockErrorAction;
import io.vblk.job.BlockJobs;
import io.vblk.job.Job;
import io.vblk.job.JobStatus;
import io.vblk.qmp.QmpEvent;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * The job events QEMU sends, from the jobs' state changes:
 * {@code JOB_STATUS_CHANGE} on every change (job.c's
 * {@code job_state_transition}), {@code BLOCK_JOB_READY} on entering READY
 * ({@code job_transition_to_ready}), and {@code BLOCK_JOB_COMPLETED} or
 * {@code BLOCK_JOB_CANCELLED} just before the job concludes
 * ({@code job_finalize_single}), so the order on the wire is QEMU's:
 * ... pending, BLOCK_JOB_COMPLETED, concluded, null. A failed request of
 * a job sends {@code BLOCK_JOB_ERROR} (blockjob.c's
 * {@code block_job_error_action}) before a stopping job's "paused".
 */
final class JobEvents implements BlockJobs.StatusListener {
    private static final JsonNodeFactory F = JsonNodeFactory.instance;
    private final QmpEvent.Sink sink;
    /** Jobs whose "created" was sent: vblk's jobs start in CREATED, QEMU's enter it with an event. */
    private final java.util.Set<Job> announced = java.util.Collections.synchronizedSet(
            java.util.Collections.newSetFromMap(new java.util.WeakHashMap<>()));

    JobEvents(QmpEvent.Sink sink) {
        this.sink = sink;
    }

    @Override
    public void statusChanged(Job job, JobStatus from, JobStatus to) {
        if (from == to) {
            return; // QEMU sends no event for ABORTING -> ABORTING
        }
        if (from == JobStatus.CREATED && announced.add(job)) {
            ObjectNode c = F.objectNode();
            c.put("id", job.id());
            c.put("status", JobStatus.CREATED.qmpName());
            sink.emit("JOB_STATUS_CHANGE", c);
        }
        if (to == JobStatus.CONCLUDED) {
            boolean cancelled = job.isCancelled() && job.ret() == -Errno.ECANCELED;
            ObjectNode d = blockJobInfo(job);
            if (!cancelled && job.ret() < 0) {
                d.put("error", errorText(job));
            }
            sink.emit(cancelled ? "BLOCK_JOB_CANCELLED" : "BLOCK_JOB_COMPLETED", d);
        }
        ObjectNode d = F.objectNode();
        d.put("id", job.id());
        d.put("status", to.qmpName());
        sink.emit("JOB_STATUS_CHANGE", d);
        if (to == JobStatus.READY && from == JobStatus.RUNNING) {
            sink.emit("BLOCK_JOB_READY", blockJobInfo(job));
        }
    }

    @Override
    public void ioError(Job job, boolean read, BlockErrorAction action) {
        ObjectNode d = F.objectNode();
        d.put("device", job.id());
        d.put("operation", read ? "read" : "write");
        d.put("action", action.qmpName());
        sink.emit("BLOCK_JOB_ERROR", d);
    }

    /**
     * A failed job's {@code error}: QEMU gives {@code strerror(-ret)} (job.c's
     * {@code job_update_rc}) unless the job set a message of its own; vblk
     * gives glibc's words for the errnos a job's I/O fails with, and its own
     * message otherwise.
     */
    static String errorText(Job job) {
        String s = switch (-job.ret()) {
            case Errno.EIO -> "Input/output error";
            case Errno.ENOSPC -> "No space left on device";
            case Errno.EPERM -> "Operation not permitted";
            case Errno.EACCES -> "Permission denied";
            case Errno.ENOMEM -> "Cannot allocate memory";
            case Errno.EINVAL -> "Invalid argument";
            case Errno.ENOTSUP -> "Operation not supported";
            default -> null;
        };
        if (s != null) {
            return s;
        }
        return job.error() != null ? job.error() : Errno.name(-job.ret());
    }

    /** The common data of the BLOCK_JOB_* events. */
    static ObjectNode blockJobInfo(Job job) {
        ObjectNode d = F.objectNode();
        d.put("type", job.type());
        d.put("device", job.id());
        d.put("len", job.progressTotal());
        d.put("offset", job.progressCurrent());
        d.put("speed", job.speed());
        return d;
    }
}
