package io.vblk.job;

import java.util.EnumSet;
import java.util.Set;

/**
 * What a user may ask of a job, and in which states: QEMU's {@code JobVerb}
 * with its {@code JobVerbTable} (job.c). A verb asked in a state that does
 * not allow it is refused with a {@link JobException} naming both.
 */
public enum JobVerb {
    CANCEL(JobStatus.CREATED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.READY, JobStatus.STANDBY,
            JobStatus.WAITING, JobStatus.PENDING, JobStatus.ABORTING),
    PAUSE(JobStatus.CREATED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.READY, JobStatus.STANDBY),
    RESUME(JobStatus.CREATED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.READY, JobStatus.STANDBY),
    SET_SPEED(JobStatus.CREATED, JobStatus.RUNNING, JobStatus.PAUSED, JobStatus.READY, JobStatus.STANDBY),
    COMPLETE(JobStatus.READY),
    FINALIZE(JobStatus.PENDING),
    DISMISS(JobStatus.CONCLUDED);

    private final Set<JobStatus> allowed;

    JobVerb(JobStatus first, JobStatus... rest) {
        allowed = EnumSet.of(first, rest);
    }

    public boolean allowedIn(JobStatus s) {
        return allowed.contains(s);
    }

    public String qmpName() {
        return name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
    }
}
