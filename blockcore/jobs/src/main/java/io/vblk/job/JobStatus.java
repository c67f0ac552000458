package io.vblk.job;

/**
 * The states of a job: QEMU's {@code JobStatus} with its transition table
 * ({@code JobSTT} in job.c). CREATED → RUNNING ⇄ PAUSED; RUNNING → READY
 * ⇄ STANDBY (a ready job paused); the run ends in WAITING (for the other
 * jobs of a transaction), PENDING (waiting to be finalized), CONCLUDED
 * (its result is kept until dismissed) and NULL; a failed or cancelled job
 * goes through ABORTING.
 */
public enum JobStatus {
    CREATED, RUNNING, PAUSED, READY, STANDBY, WAITING, PENDING, ABORTING, CONCLUDED, NULL;

    private static final boolean[][] STT = new boolean[values().length][values().length];

    static {
        allow(CREATED, RUNNING, ABORTING, NULL);
        allow(RUNNING, PAUSED, READY, WAITING, ABORTING);
        allow(PAUSED, RUNNING);
        allow(READY, STANDBY, WAITING, ABORTING);
        allow(STANDBY, READY);
        allow(WAITING, PENDING, ABORTING);
        allow(PENDING, ABORTING, CONCLUDED);
        allow(ABORTING, ABORTING, CONCLUDED);
        allow(CONCLUDED, NULL);
    }

    private static void allow(JobStatus from, JobStatus... to) {
        for (JobStatus t : to) {
            STT[from.ordinal()][t.ordinal()] = true;
        }
    }

    /** Whether QEMU's table allows going from this state to {@code to}. */
    public boolean canGoTo(JobStatus to) {
        return STT[ordinal()][to.ordinal()];
    }

    /** QEMU's {@code job_is_completed}: the run is over (its completion ran). */
    public boolean isCompleted() {
        switch (this) {
            case WAITING:
            case PENDING:
            case ABORTING:
            case CONCLUDED:
            case NULL:
                return true;
            default:
                return false;
        }
    }

    /** The QMP spelling ("running", "concluded", ...). */
    public String qmpName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
