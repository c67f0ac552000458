package io.vblk.job;

/**
 * A job held paused (or found completed) by {@link Job#pauseSync()}; closing
 * it lifts this pause (QEMU's {@code job_resume}). Try-with-resources keeps
 * every early return balanced. Closing twice is harmless.
 */
public final class JobPause implements AutoCloseable {
    private final Job job;
    private boolean closed;

    JobPause(Job job) {
        this.job = job;
    }

    public Job job() {
        return job;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            job.resumeRequest();
        }
    }
}
