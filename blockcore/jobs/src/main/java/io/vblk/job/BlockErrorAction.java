package io.vblk.job;

/**
 * What a block job did with a failed request: QEMU's {@code BlockErrorAction},
 * the {@code action} of the {@code BLOCK_JOB_ERROR} event. It follows from the
 * job's {@link io.vblk.block.ErrorPolicy} ({@code on-error},
 * {@code on-source-error}, {@code on-target-error}) and the errno
 * ({@link Job#errorAction}).
 */
public enum BlockErrorAction {
    /** The job fails with the error. */
    REPORT,
    /** The job goes on as if the request had succeeded (the range is copied again later, or skipped). */
    IGNORE,
    /** The job pauses (user-visible, with an I/O status) and retries the request when resumed. */
    STOP;

    /** The QAPI spelling: "report", "ignore", "stop". */
    public String qmpName() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
