package io.vblk.job;

import io.vblk.aio.AioContextLock;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockReopen;
import io.vblk.block.DrainedSection;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The block jobs of one machine and the commands that start and steer them:
 * QEMU's job list with {@code block-stream}, {@code block-commit},
 * {@code blockdev-mirror} and the {@code block-job-*} verbs (blockdev.c).
 * Every command runs in the main loop and takes the nodes' context lock once.
 *
 * <p>Starting a job is a graph change: it runs in a drained section of the
 * top node (QEMU's reopen of the base, or of the top, drains the graph) and
 * first stops every job already using those nodes with
 * {@link Job#pauseSync()} — the point where a job that has finished its run
 * must have its deferred completion run (seed 000): the chain is resolved
 * only after that. A node still used by another job refuses a new one
 * (QEMU's op blockers).
 */
public final class BlockJobs implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(BlockJobs.class);
    private static final Pattern ID = Pattern.compile("[A-Za-z][A-Za-z0-9_.\\-]{0,63}");

    private final BlockLayer layer;
    private final Map<String, Job> jobs = new LinkedHashMap<>();
    private final List<StatusListener> listeners = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final AutoCloseable diagnostics;

    public BlockJobs(BlockLayer layer) {
        this.layer = layer;
        this.diagnostics = layer.loop().addDiagnostics("block jobs", this::describe);
    }

    public BlockLayer layer() {
        return layer;
    }

    /**
     * Observes every job's state changes: the points where QEMU sends
     * {@code JOB_STATUS_CHANGE} (job_state_transition) and the block job
     * events. Called in whichever thread moves the job (its context or the
     * main loop), after the state changed; it must not block or call back
     * into the job.
     */
    @FunctionalInterface
    public interface StatusListener {
        void statusChanged(Job job, JobStatus from, JobStatus to);

        /**
         * A request of the job failed and {@code action} is what the job does
         * about it: where QEMU sends {@code BLOCK_JOB_ERROR}
         * ({@code block_job_error_action}). Job context, before a stopping
         * job pauses.
         */
        default void ioError(Job job, boolean read, BlockErrorAction action) {
        }
    }

    public void addStatusListener(StatusListener l) {
        listeners.add(l);
    }

    void fireStatusChanged(Job j, JobStatus from, JobStatus to) {
        for (StatusListener l : listeners) {
            try {
                l.statusChanged(j, from, to);
            } catch (RuntimeException e) {
                LOG.error("job status listener failed on {} -> {} of {}", from, to, j, e);
            }
        }
    }

    void fireIoError(Job j, boolean read, BlockErrorAction action) {
        for (StatusListener l : listeners) {
            try {
                l.ioError(j, read, action);
            } catch (RuntimeException e) {
                LOG.error("job listener failed on an I/O error of {}", j, e);
            }
        }
    }

    /** A job by id, or null. */
    public Job job(String id) {
        synchronized (jobs) {
            return jobs.get(id);
        }
    }

    public List<Job> jobs() {
        synchronized (jobs) {
            return new ArrayList<>(jobs.values());
        }
    }

    void forget(Job j) {
        synchronized (jobs) {
            jobs.remove(j.id(), j);
        }
    }

    private void register(Job j) {
        synchronized (jobs) {
            jobs.put(j.id(), j);
        }
    }

    private void checkNewId(String id) {
        if (id == null || !ID.matcher(id).matches()) {
            throw new JobException("invalid job id '" + id + "': use a letter, then letters, digits, '-', '.', '_'");
        }
        if (job(id) != null) {
            throw new JobException("a job with id '" + id + "' already exists");
        }
    }

    private void checkMainLoop(String what) {
        if (!layer.loop().context().inHomeThread()) {
            throw new IllegalStateException("cannot " + what + " from thread '" + Thread.currentThread().getName()
                    + "': job commands run in the main loop");
        }
    }

    // ------------------------------------------------------------------ starting jobs

    /**
     * {@code block-stream}: copies into {@code top} what its backing chain
     * holds above {@code base} (null: everything), then makes base its backing
     * file. {@code top} must be a format that takes a backing file (qcow2).
     */
    public StreamJob stream(String id, BlockNode top, BlockNode base, JobOptions o) {
        checkMainLoop("start a stream job");
        checkNewId(id);
        StreamJob j;
        try (AioContextLock.Held h = Job.ownIfForeign(top.context())) {
            try (DrainedSection d = top.drainedBegin(); JobPauses p = stopJobsOn(Graph.chain(top))) {
                checkInChain(top, base, true);
                List<BlockNode> used = new ArrayList<>();
                used.add(top);
                used.addAll(Graph.between(top, base));
                checkNotInUse(used);
                if (!top.driver().supportsBacking()) {
                    throw new JobException("cannot stream into '" + top.name() + "' (" + top.driver().formatName()
                            + "): it has no backing file to stream from");
                }
                boolean madeWritable = top.isReadOnly();
                if (madeWritable) {
                    BlockReopen.setReadOnly(top, false);
                }
                j = new StreamJob(this, id, top, base, madeWritable, o);
                register(j);
            }
            LOG.debug("stream '{}' starts: top '{}', base {}", id, top.name(), base == null ? "none" : base.name());
            j.start();
        }
        return j;
    }

    /**
     * {@code block-commit}: commits {@code top} and the layers below it down
     * to (excluding) {@code base} into {@code base}. Committing the active
     * layer (a device's node) is a {@link MirrorJob} that becomes READY and
     * pivots the device to base on {@code complete}; committing a lower layer
     * is a {@link CommitJob} that rewires top's overlay when done.
     */
    public Job commit(String id, BlockNode top, BlockNode base, JobOptions o) {
        checkMainLoop("start a commit job");
        checkNewId(id);
        if (base == null) {
            throw new JobException("commit needs a base node");
        }
        Job j;
        try (AioContextLock.Held h = Job.ownIfForeign(top.context())) {
            // QEMU: commit_active_start -> bdrv_reopen(base) -> bdrv_reopen_multiple: a drained section, and
            // every job on these nodes stopped, before the chain is looked at
            try (DrainedSection d = top.drainedBegin(); JobPauses p = stopJobsOn(Graph.chain(top))) {
                checkInChain(top, base, false);
                if (base.length() < top.length()) {
                    throw new JobException("base '" + base.name() + "' (" + base.length() + " bytes) is smaller than top '"
                            + top.name() + "' (" + top.length() + " bytes)");
                }
                List<BlockNode> used = new ArrayList<>();
                used.add(top);
                used.addAll(Graph.between(top, base));
                used.add(base);
                boolean active = Graph.isActiveLayer(top);
                BlockNode overlay = active ? null : Graph.overlay(top);
                if (!active && overlay == null) {
                    throw new JobException("'" + top.name() + "' is neither a device's active layer nor the backing file "
                            + "of another node: nothing would use the result of the commit");
                }
                if (overlay != null) {
                    used.add(overlay);
                }
                checkNotInUse(used);
                boolean baseRw = base.isReadOnly();
                if (baseRw) {
                    BlockReopen.setReadOnly(base, false);
                }
                try {
                    if (active) {
                        j = new MirrorJob(this, id, MirrorJob.Mode.ACTIVE_COMMIT, top, base, base, baseRw, o);
                    } else {
                        boolean overlayRw = overlay.isReadOnly();
                        if (overlayRw) {
                            BlockReopen.setReadOnly(overlay, false);
                        }
                        j = new CommitJob(this, id, top, base, overlay, baseRw, overlayRw, o);
                    }
                } catch (RuntimeException e) {
                    if (baseRw) {
                        BlockReopen.setReadOnly(base, true);
                    }
                    throw e;
                }
                register(j);
            }
            LOG.debug("commit '{}' starts: top '{}' into base '{}'", id, top.name(), base.name());
            j.start();
        }
        return j;
    }

    /**
     * {@code blockdev-mirror}: mirrors {@code source} (usually a device's
     * active layer) to {@code target}, an open, writable node of the same
     * size that no device uses; {@code base} null copies everything
     * ({@code sync=full}), base = source's backing file copies only the top
     * layer ({@code sync=top}, the target then has that backing file). The
     * target is moved into the source's AioContext. The job holds its own
     * references; the caller may drop its reference to the target.
     */
    public MirrorJob mirror(String id, BlockNode source, BlockNode target, BlockNode base, JobOptions o) {
        checkMainLoop("start a mirror job");
        checkNewId(id);
        MirrorJob j;
        try (AioContextLock.Held h = Job.ownIfForeign(source.context())) {
            if (Graph.chain(source).contains(target)) {
                throw new JobException("target '" + target.name() + "' is in the backing chain of '" + source.name() + "'");
            }
            if (!target.parents().isEmpty()) {
                throw new JobException("target '" + target.name() + "' is already in use by "
                        + target.parents().get(0).parent().parentName());
            }
            if (target.length() != source.length()) {
                throw new JobException("target '" + target.name() + "' has " + target.length() + " bytes, source '"
                        + source.name() + "' " + source.length());
            }
            if (target.isReadOnly()) {
                throw new JobException("target '" + target.name() + "' is read-only");
            }
            if (target.context() != source.context()) {
                layer.setAioContext(target, source.context());
            }
            try (DrainedSection d = source.drainedBegin(); JobPauses p = stopJobsOn(Graph.chain(source))) {
                if (base != null) {
                    checkInChain(source, base, false);
                }
                checkNotInUse(List.of(source, target));
                j = new MirrorJob(this, id, MirrorJob.Mode.MIRROR, source, target, base, false, o);
                register(j);
            }
            LOG.debug("mirror '{}' starts: '{}' -> '{}'", id, source.name(), target.name());
            j.start();
        }
        return j;
    }

    private static void checkInChain(BlockNode top, BlockNode base, boolean nullOk) {
        if (base == null) {
            if (!nullOk) {
                throw new JobException("a base node is required");
            }
            return;
        }
        if (base == top || !Graph.chain(top).contains(base)) {
            throw new JobException("'" + base.name() + "' is not in the backing chain below '" + top.name() + "'");
        }
    }

    /** QEMU's op blockers: a node a job uses cannot be used by another one. */
    private static void checkNotInUse(Collection<BlockNode> nodes) {
        for (BlockNode n : nodes) {
            for (BlockChild e : n.parents()) {
                Job other = Job.of(e.parent());
                if (other != null) {
                    throw new JobException("node '" + n.name() + "' is busy: job '" + other.id() + "' ("
                            + other.type() + ") uses it");
                }
            }
        }
    }

    /**
     * Stops every job using one of {@code nodes} (each paused, or completed,
     * when this returns); close the result to resume them. Main loop holding
     * the nodes' context lock once.
     */
    public static JobPauses stopJobsOn(Collection<BlockNode> nodes) {
        Set<Job> found = new LinkedHashSet<>();
        for (BlockNode n : nodes) {
            for (BlockChild e : n.parents()) {
                Job j = Job.of(e.parent());
                if (j != null) {
                    found.add(j);
                }
            }
        }
        JobPauses all = new JobPauses();
        try {
            for (Job j : found) {
                all.add(j.pauseSync());
            }
        } catch (RuntimeException e) {
            all.close();
            throw e;
        }
        return all;
    }

    // ------------------------------------------------------------------ verbs

    private Job require(String id) {
        Job j = job(id);
        if (j == null) {
            throw new JobException("no job with id '" + id + "'");
        }
        return j;
    }

    private void onJob(String id, String what, java.util.function.Consumer<Job> verb) {
        checkMainLoop(what);
        Job j = require(id);
        try (AioContextLock.Held h = Job.ownIfForeign(j.context())) {
            verb.accept(j);
        }
    }

    public void pause(String id) {
        onJob(id, "pause a job", Job::pause);
    }

    public void resume(String id) {
        onJob(id, "resume a job", Job::resume);
    }

    public void cancel(String id, boolean force) {
        onJob(id, "cancel a job", j -> j.cancel(force));
    }

    public void complete(String id) {
        onJob(id, "complete a job", Job::complete);
    }

    public void setSpeed(String id, long bytesPerSecond) {
        onJob(id, "set a job's speed", j -> j.setSpeed(bytesPerSecond));
    }

    public void finalizeJob(String id) {
        onJob(id, "finalize a job", Job::finalizeJob);
    }

    public void dismiss(String id) {
        onJob(id, "dismiss a job", Job::dismiss);
    }

    public String describe() {
        StringBuilder sb = new StringBuilder();
        for (Job j : jobs()) {
            sb.append(j.describe()).append('\n');
        }
        return sb.length() == 0 ? "(no jobs)" : sb.toString();
    }

    @Override
    public void close() {
        try {
            diagnostics.close();
        } catch (Exception e) {
            throw new BlockException("removing the job diagnostics failed", e);
        }
    }

    /** The jobs {@link #stopJobsOn} stopped; closing resumes each. */
    public static final class JobPauses implements AutoCloseable {
        private final List<JobPause> pauses = new ArrayList<>();

        void add(JobPause p) {
            pauses.add(p);
        }

        public List<Job> jobs() {
            List<Job> l = new ArrayList<>();
            pauses.forEach(p -> l.add(p.job()));
            return l;
        }

        @Override
        public void close() {
            for (int i = pauses.size() - 1; i >= 0; i--) {
                pauses.get(i).close();
            }
            pauses.clear();
        }
    }
}
