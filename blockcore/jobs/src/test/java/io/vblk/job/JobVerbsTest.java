package io.vblk.job;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.AioWait;
import io.vblk.aio.Errno;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockNode;
import io.vblk.block.DrainedSection;

import java.nio.file.Path;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The job state machine and its verbs: QEMU's transition and verb tables,
 * user pause/resume, a drained section pausing a busy job at its pause point,
 * manual finalize and dismiss, cancel, speed limits, and the rate limiter's
 * arithmetic.
 */
@Tag("concurrency")
class JobVerbsTest {
    @TempDir
    Path dir;

    @Test
    void transitionAndVerbTablesAreQemus() {
        assertTrue(JobStatus.CREATED.canGoTo(JobStatus.RUNNING));
        assertTrue(JobStatus.RUNNING.canGoTo(JobStatus.READY));
        assertTrue(JobStatus.READY.canGoTo(JobStatus.STANDBY));
        assertTrue(JobStatus.STANDBY.canGoTo(JobStatus.READY));
        assertTrue(JobStatus.PENDING.canGoTo(JobStatus.CONCLUDED));
        assertFalse(JobStatus.PAUSED.canGoTo(JobStatus.READY));
        assertFalse(JobStatus.CONCLUDED.canGoTo(JobStatus.RUNNING));
        assertFalse(JobStatus.NULL.canGoTo(JobStatus.CREATED));
        assertTrue(JobVerb.COMPLETE.allowedIn(JobStatus.READY));
        assertFalse(JobVerb.COMPLETE.allowedIn(JobStatus.RUNNING));
        assertTrue(JobVerb.FINALIZE.allowedIn(JobStatus.PENDING));
        assertTrue(JobVerb.DISMISS.allowedIn(JobStatus.CONCLUDED));
        assertFalse(JobVerb.PAUSE.allowedIn(JobStatus.PENDING));
        assertTrue(JobStatus.WAITING.isCompleted());
        assertFalse(JobStatus.READY.isCompleted());
    }

    @Test
    void rateLimitSleepsOncePerSliceQuota() {
        RateLimit r = new RateLimit();
        assertEquals(0, r.delayNs(0, 1 << 30), "unlimited");
        r.setSpeed(10L << 20); // 10 MiB/s: 1 MiB per 100 ms slice
        assertEquals(0, r.delayNs(0, 512 << 10));
        long d = r.delayNs(1_000_000, 1 << 20); // 1.5 MiB in the first slice: wait for the next one
        assertEquals(RateLimit.SLICE_NS - 1_000_000, d);
        assertEquals(10L << 20, r.speed());
    }

    private BlockBackend chainWithData(JobRig r) {
        Path[] c = JobRig.chain(dir);
        return r.main("open", () -> {
            BlockNode top = r.layer.openImage("top", c[2], "qcow2", false);
            BlockBackend b = r.device(top);
            BlockNode mid = top.child(io.vblk.block.ChildRole.BACKING);
            io.vblk.block.BlockReopen.setReadOnly(mid, false);
            for (int i = 0; i < 16; i++) {
                JobRig.write(mid, i * 131072L, JobRig.pattern(65536, i));
            }
            io.vblk.block.BlockReopen.setReadOnly(mid, true);
            return b;
        });
    }

    @Test
    void userPauseResumeAndADrainedSectionPauseTheJobAtItsPausePoint() throws Exception {
        try (JobRig r = new JobRig()) {
            BlockBackend b = chainWithData(r);
            StreamJob j = r.main("stream", () -> r.jobs.stream("s0", b.root(), null,
                    JobOptions.defaults().withChunk(65536).withAutoFinalize(false).withAutoDismiss(false)));
            r.main("pause", () -> {
                r.jobs.pause("s0");
                AioWait.pollWhile(r.loop.context(), () -> !j.isPaused());
                assertEquals(JobStatus.PAUSED, j.status());
                assertFalse(j.isBusy());
                long at = j.progressCurrent();
                r.jobs.resume("s0");
                assertEquals(JobStatus.RUNNING, j.status());
                // a drained section of a node the job uses waits for the busy job and leaves it paused
                BlockNode top = Graph.skipFilters(b.root());
                try (DrainedSection d = top.drainedBegin()) {
                    assertTrue(j.isPaused() || j.status().isCompleted() || j.settled().isDone(), j.describe());
                    assertFalse(j.isBusy(), j.describe());
                }
                assertTrue(j.progressCurrent() >= at);
            });
            assertEquals(JobStatus.PENDING, r.watchdog().await("pending", j.settled()));
            assertThrows(JobException.class, () -> r.main("dismiss too early", () -> r.jobs.dismiss("s0")));
            r.main("finalize", () -> r.jobs.finalizeJob("s0"));
            assertEquals(JobStatus.CONCLUDED, j.status());
            assertEquals(0, (int) j.concluded().get());
            r.main("dismiss", () -> r.jobs.dismiss("s0"));
            assertEquals(JobStatus.NULL, j.status());
            assertEquals(null, r.jobs.job("s0"));
        }
    }

    @Test
    void cancelAndVerbsInTheWrongState() throws Exception {
        try (JobRig r = new JobRig()) {
            BlockBackend b = chainWithData(r);
            StreamJob j = r.main("stream", () -> {
                StreamJob s = r.jobs.stream("s1", b.root(), null, JobOptions.defaults().withChunk(65536)
                        .withSpeed(1 << 20));
                JobException e = assertThrows(JobException.class, () -> r.jobs.complete("s1"));
                assertTrue(e.getMessage().contains("cannot accept command verb 'complete'"), e.getMessage());
                assertThrows(JobException.class, () -> r.jobs.stream("s1", b.root(), null, JobOptions.defaults()));
                JobException busy = assertThrows(JobException.class,
                        () -> r.jobs.stream("s2", b.root(), null, JobOptions.defaults()));
                assertTrue(busy.getMessage().contains("is busy: job 's1'"), busy.getMessage());
                r.jobs.setSpeed("s1", 2 << 20);
                assertEquals(2 << 20, s.speed());
                r.jobs.cancel("s1", false);
                return s;
            });
            assertEquals(-Errno.ECANCELED, (int) r.watchdog().await("cancelled", j.concluded()));
            r.main("after", () -> {
                assertEquals("top", b.root().name(), "the filter is gone, the device on top again");
                assertTrue(b.root().child(io.vblk.block.ChildRole.BACKING) != null, "the chain is intact");
            });
        }
    }
}
