package io.vblk.job;

import io.vblk.aio.AioContext;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockParent;

/**
 * A job as the parent of the nodes it uses: QEMU's {@code child_job}
 * (blockjob.c). A drained section of any of the nodes pauses the job, and
 * the job follows its nodes into another AioContext, held paused across the
 * move.
 */
final class JobParent implements BlockParent {
    private final Job job;

    JobParent(Job job) {
        this.job = job;
    }

    Job job() {
        return job;
    }

    @Override
    public String parentName() {
        return "job '" + job.id() + "'";
    }

    @Override
    public void childDrainedBegin(BlockChild child) {
        job.runner().pauseRequest();
    }

    @Override
    public void childDrainedEnd(BlockChild child) {
        job.runner().resumeRequest();
    }

    /** QEMU's {@code child_job_drained_poll}: a job that is not busy will not issue I/O before it pauses. */
    @Override
    public boolean childDrainedPoll(BlockChild child) {
        return job.isBusy() && !job.status().isCompleted();
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
        return job.completion().isCompleting() && !newCtx.isMain() ? "job '" + job.id() + "' is completing" : null;
    }

    @Override
    public void childDetachAioContext(BlockChild child) {
        job.runner().detachAioContext();
    }

    @Override
    public void childAioContextChanged(BlockChild child, AioContext newCtx) {
        job.runner().attachAioContext(newCtx);
    }
}
