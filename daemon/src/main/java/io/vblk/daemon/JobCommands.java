package io.vblk.daemon;

import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.block.ErrorPolicy;
import io.vblk.job.Job;
import io.vblk.job.JobOptions;
import io.vblk.job.JobStatus;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpCommands;
import io.vblk.qmp.QmpError;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.function.BiConsumer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The block job commands (QEMU's blockdev.c and job-qmp.c):
 * {@code block-stream}, {@code block-commit}, {@code blockdev-mirror},
 * {@code query-jobs}, {@code query-block-jobs}, the {@code job-*} verbs and
 * their {@code block-job-*} forms, {@code block-job-set-speed}. Each runs in
 * the main loop through {@link io.vblk.job.BlockJobs}, which drains and
 * locks as QEMU does. In qsd there are no named devices, so {@code device}
 * is a node name, and a job's id defaults to it.
 */
final class JobCommands {
    private static final Logger LOG = LoggerFactory.getLogger(JobCommands.class);
    private static final JsonNodeFactory F = JsonNodeFactory.instance;

    private JobCommands() {
    }

    static void register(Daemon d, QmpCommands c) {
        d.jobs().addStatusListener(new JobEvents(d::emit));
        c.register("block-stream", a -> {
            String device = a.str("device");
            String id = a.optStr("job-id", device);
            String baseNode = a.optStr("base-node", null);
            JobOptions o = options(a);
            unsupported(a, "base", "backing-file", "bottom", "filter-node-name");
            ErrorPolicy onError = onError(a, "on-error");
            a.end();
            JobOptions so = o.withErrorPolicy(onError, onError);
            d.run("block-stream", () -> {
                BlockNode top = node(d, device);
                BlockNode base = baseNode == null ? null : node(d, baseNode);
                call(() -> d.jobs().stream(id, top, base, so));
            });
            return null;
        });
        c.register("block-commit", a -> {
            String device = a.str("device");
            String id = a.optStr("job-id", device);
            String topNode = a.optStr("top-node", null);
            String baseNode = a.optStr("base-node", null);
            JobOptions o = options(a);
            unsupported(a, "base", "top", "backing-file", "filter-node-name", "backing-mask-protocol");
            ErrorPolicy onError = onError(a, "on-error");
            a.end();
            JobOptions co = o.withErrorPolicy(onError, onError);
            d.run("block-commit", () -> {
                BlockNode active = node(d, device);
                BlockNode top = topNode == null ? active : node(d, topNode);
                BlockNode base = baseNode != null ? node(d, baseNode) : bottom(top);
                if (base == null) {
                    throw QmpError.generic("There is no backing image");
                }
                call(() -> d.jobs().commit(id, top, base, co));
            });
            return null;
        });
        c.register("blockdev-mirror", a -> {
            String device = a.str("device");
            String target = a.str("target");
            String sync = a.enumValue("sync", "full", "top", "none", "incremental", "bitmap");
            String id = a.optStr("job-id", device);
            JobOptions o = options(a);
            unsupported(a, "replaces", "granularity", "filter-node-name");
            int bufSize = bufSize(a);
            ErrorPolicy onSource = onError(a, "on-source-error");
            ErrorPolicy onTarget = onError(a, "on-target-error");
            String mode = a.optEnum("copy-mode", "background", "background", "write-blocking");
            a.end();
            JobOptions mo = o.withErrorPolicy(onSource, onTarget).withBufSize(bufSize);
            if (!sync.equals("full") && !sync.equals("top")) {
                throw QmpError.generic("sync=" + sync + " is not supported yet by vblk's mirror (full or top)");
            }
            if (!mode.equals("background")) {
                throw QmpError.generic("copy-mode=" + mode + " is not supported yet by vblk's mirror");
            }
            d.run("blockdev-mirror", () -> {
                BlockNode src = node(d, device);
                BlockNode dst = node(d, target);
                BlockNode base = sync.equals("top") ? src.child(ChildRole.BACKING) : null;
                call(() -> d.jobs().mirror(id, src, dst, base, mo));
            });
            return null;
        });
        c.register("query-jobs", a -> {
            a.end();
            ArrayNode l = F.arrayNode();
            for (Job j : d.jobs().jobs()) {
                ObjectNode o = l.addObject();
                o.put("id", j.id());
                o.put("type", j.type());
                o.put("status", j.status().qmpName());
                o.put("current-progress", j.progressCurrent());
                o.put("total-progress", j.progressTotal());
                if (j.status() == JobStatus.CONCLUDED && j.ret() < 0) {
                    o.put("error", JobEvents.errorText(j));
                }
            }
            return l;
        });
        c.register("query-block-jobs", a -> {
            a.end();
            ArrayNode l = F.arrayNode();
            for (Job j : d.jobs().jobs()) {
                ObjectNode o = JobEvents.blockJobInfo(j);
                o.put("busy", j.isBusy());
                o.put("paused", j.isPaused());
                o.put("io-status", j.ioStatus().name().toLowerCase(java.util.Locale.ROOT));
                o.put("ready", j.status() == JobStatus.READY || j.status() == JobStatus.STANDBY);
                o.put("status", j.status().qmpName());
                o.put("auto-finalize", j.options().autoFinalize());
                o.put("auto-dismiss", j.options().autoDismiss());
                l.add(o);
            }
            return l;
        });
        verb(d, c, "pause", "id", (j, a) -> d.jobs().pause(j));
        verb(d, c, "resume", "id", (j, a) -> d.jobs().resume(j));
        verb(d, c, "complete", "id", (j, a) -> d.jobs().complete(j));
        verb(d, c, "finalize", "id", (j, a) -> d.jobs().finalizeJob(j));
        verb(d, c, "dismiss", "id", (j, a) -> d.jobs().dismiss(j));
        c.register("job-cancel", a -> {
            String id = a.str("id");
            a.end();
            d.run("job-cancel", () -> call(() -> d.jobs().cancel(requireJob(d, id, false).id(), false)));
            return null;
        });
        c.register("block-job-cancel", a -> {
            String id = a.str("device");
            boolean force = a.optBool("force", false);
            a.end();
            d.run("block-job-cancel", () -> call(() -> d.jobs().cancel(requireJob(d, id, true).id(), force)));
            return null;
        });
        c.register("block-job-set-speed", a -> {
            String id = a.str("device");
            long speed = a.integer("speed");
            a.end();
            if (speed < 0) {
                throw QmpError.generic("Parameter 'speed' expects a non-negative value");
            }
            d.run("block-job-set-speed", () -> call(() -> d.jobs().setSpeed(requireJob(d, id, true).id(), speed)));
            return null;
        });
    }

    /** {@code job-VERB id} and {@code block-job-VERB device}. */
    private static void verb(Daemon d, QmpCommands c, String verb, String key, BiConsumer<String, QapiArgs> v) {
        c.register("job-" + verb, a -> {
            String id = a.str(key);
            a.end();
            d.run("job-" + verb, () -> call(() -> v.accept(requireJob(d, id, false).id(), a)));
            return null;
        });
        c.register("block-job-" + verb, a -> {
            String id = a.str("device");
            a.end();
            d.run("block-job-" + verb, () -> call(() -> v.accept(requireJob(d, id, true).id(), a)));
            return null;
        });
    }

    private static Job requireJob(Daemon d, String id, boolean blockJob) {
        Job j = d.jobs().job(id);
        if (j == null) {
            if (blockJob) {
                throw new QmpError("DeviceNotActive", "Block job " + id + " not found");
            }
            throw QmpError.generic("Job not found");
        }
        return j;
    }

    private static JobOptions options(QapiArgs a) {
        long speed = a.optInt("speed", 0);
        boolean autoFinalize = a.optBool("auto-finalize", true);
        boolean autoDismiss = a.optBool("auto-dismiss", true);
        if (speed < 0) {
            throw QmpError.generic("Parameter 'speed' expects a non-negative value");
        }
        return JobOptions.defaults().withSpeed(speed).withAutoFinalize(autoFinalize).withAutoDismiss(autoDismiss);
    }

    /** Options QEMU takes that vblk's jobs do not implement: an error naming them, never silently ignored. */
    private static void unsupported(QapiArgs a, String... keys) {
        for (String k : keys) {
            if (a.has(k)) {
                a.accept(k);
                throw QmpError.generic("Parameter '" + k + "' is not supported yet by vblk's jobs");
            }
        }
    }

    /**
     * {@code on-error}, {@code on-source-error}, {@code on-target-error}
     * (QAPI's {@code BlockdevOnError}, default report); {@code auto} is for a
     * job what {@code enospc} is (block_job_error_action: stop on ENOSPC,
     * report the rest).
     */
    /** Mirror's {@code buf-size}: the bytes its copy operations may hold at once (0, the default: one chunk). */
    static int bufSize(QapiArgs a) {
        long v = a.optInt("buf-size", 0);
        if (v < 0 || v > Integer.MAX_VALUE) {
            throw QmpError.generic("Parameter 'buf-size' expects a value between 0 and " + Integer.MAX_VALUE);
        }
        return (int) v;
    }

    /** QAPI's BlockdevOnError for {@code key} (default report; {@code auto} acts as {@code enospc}). */
    static ErrorPolicy onError(QapiArgs a, String key) {
        String v = a.optEnum(key, "report", "report", "ignore", "enospc", "stop", "auto");
        return ErrorPolicy.parse(v.equals("auto") ? "enospc" : v);
    }

    private static BlockNode node(Daemon d, String name) {
        BlockNode n = d.layer().node(name);
        if (n == null) {
            throw QmpError.generic("Cannot find device='" + name + "' nor node-name='" + name + "'");
        }
        return n;
    }

    /** The bottom of {@code top}'s backing chain (block-commit's default base), or null. */
    private static BlockNode bottom(BlockNode top) {
        BlockNode b = top.child(ChildRole.BACKING);
        if (b == null) {
            return null;
        }
        while (b.child(ChildRole.BACKING) != null) {
            b = b.child(ChildRole.BACKING);
        }
        return b;
    }

    private static void call(Runnable r) {
        try {
            r.run();
        } catch (BlockException e) { // JobException included
            throw QmpError.generic(e.getMessage());
        }
    }

    /** At shutdown: every job that has not concluded is force-cancelled and waited for (bounded). */
    static void cancelAll(Daemon d) {
        for (Job j : d.jobs().jobs()) {
            if (!j.status().isCompleted()) {
                try {
                    d.run("cancel " + j.id(), () -> call(() -> d.jobs().cancel(j.id(), true)));
                    d.loop().watchdog(Daemon.MAIN_LOOP_BOUND).await("job " + j.id() + " to end", j.concluded());
                } catch (RuntimeException e) {
                    LOG.warn("job '{}': cancel at shutdown failed: {}", j.id(), e.getMessage());
                }
            }
        }
    }
}
