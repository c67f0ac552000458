package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.block.qcow2.Qcow2;
import io.vblk.guest.Machine;
import io.vblk.job.BlockJobs;
import io.vblk.job.Graph;
import io.vblk.job.Job;
import io.vblk.job.JobOptions;
import io.vblk.job.JobStatus;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Stream, commit (of a lower layer and of the active one) and mirror while
 * the guest reads and writes the disk through the Linux-like driver, served
 * by an IOThread. The guest checks every read against the model as it goes;
 * afterwards every block of the device is read and checked, the final image
 * passes {@code qemu-img check}, and {@code qemu-img compare} finds it equal
 * to a raw image built from the model.
 */
@Tag("concurrency")
class JobDataTest {
    @TempDir
    Path dir;

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"stream", "commit-lower", "commit-active", "mirror"})
    void jobUnderConcurrentGuestWrites(String kind) throws Exception {
        QemuImg.require();
        DiskModel model = new DiskModel(JobRigs.SIZE);
        Path[] c = JobRigs.chain(dir, model);
        Path target = dir.resolve("target.qcow2");
        Qcow2.create(target, JobRigs.SIZE);
        Path result;
        try (Machine m = JobRigs.machine(c[2], true); BlockJobs jobs = new BlockJobs(m.blockLayer())) {
            JobRigs.Guest g = new JobRigs.Guest(m, model, new AtomicLong(), kind.hashCode());
            g.progress(100);
            // stream and commit: small steps and a speed limit, so the guest's writes land in the middle of the copy;
            // mirror and active commit must also converge while the guest keeps writing
            boolean converges = kind.equals("commit-active") || kind.equals("mirror");
            JobOptions o = converges ? JobOptions.defaults() : JobOptions.defaults().withChunk(65536).withSpeed(16L << 20);
            Job j = JobRigs.main(m, "start " + kind, () -> {
                BlockNode top = Graph.skipFilters(m.disk(0).backend().root());
                BlockNode mid = top.child(ChildRole.BACKING);
                BlockNode base = mid.child(ChildRole.BACKING);
                switch (kind) {
                    case "stream":
                        return jobs.stream("job0", top, base, o);
                    case "commit-lower":
                        return jobs.commit("job0", mid, base, o);
                    case "commit-active":
                        return jobs.commit("job0", top, base, o);
                    default: {
                        BlockNode t = m.blockLayer().openImage("target", target, "qcow2", false);
                        Job mj = jobs.mirror("job0", top, t, null, o);
                        t.unref();
                        return mj;
                    }
                }
            });
            g.progress(200);
            if (kind.equals("commit-active") || kind.equals("mirror")) {
                // a sequential copy cannot catch up with a guest that rewrites the disk at full speed (QEMU's
                // background mirror cannot either): the guest only reads until the job is in sync
                g.workload.setReadPercent(100);
                m.await("ready", j.ready(), JobRigs.OK);
                g.workload.setReadPercent(40);
                g.progress(200); // writes while READY go through the dirty bitmap
                JobRigs.main(m, "complete", () -> {
                    jobs.complete("job0");
                    return null;
                });
            }
            assertEquals(0, (int) m.await("job concluded", j.concluded(), JobRigs.OK), j.describe());
            assertEquals(JobStatus.NULL, j.status());
            g.progress(200); // and the guest goes on, on the job's result
            assertNull(g.finish(), "the guest's reads matched the model throughout");
            assertTrue(g.workload.writes > 100, "the guest wrote during the job");
            assertTrue(((io.vblk.job.CopyJob) j).copiedBytes() > 0, "the job copied data: " + j.describe());
            assertNull(JobRigs.verifyDevice(m, model), "every block of the device matches the model");
            String root = JobRigs.main(m, "device node", () -> m.disk(0).backend().root().name());
            switch (kind) {
                case "stream":
                    assertEquals("disk0", root);
                    result = c[2];
                    break;
                case "commit-lower":
                    assertEquals("disk0", root);
                    result = c[2];
                    break;
                case "commit-active":
                    assertEquals("disk0-backing2", root);
                    result = c[0];
                    break;
                default:
                    assertEquals("target", root);
                    result = target;
                    break;
            }
            JobRigs.writeBack(m);
        }
        // the machine is closed: metadata written back, files closed
        switch (kind) {
            case "stream":
            case "commit-lower":
                assertEquals(c[0].toAbsolutePath().toString(), QemuImg.backingFile(c[2]),
                        "top's header names base as its backing file");
                QemuImg.check(c[0]);
                break;
            case "commit-active":
                assertEquals(null, QemuImg.backingFile(c[0]));
                break;
            default:
                assertEquals(null, QemuImg.backingFile(target));
                break;
        }
        QemuImg.check(result);
        Path ref = dir.resolve("reference.raw");
        model.writeReference(ref);
        QemuImg.compare(result, ref);
    }

    /**
     * A mirror told to complete while the guest writes faster than the job
     * copies (here: the job throttled to 64 KiB/s, the guest writing only)
     * still concludes: the completion copies what is dirty with the source
     * drained, instead of waiting for a moment with nothing dirty that never
     * comes.
     */
    @Test
    void aMirrorCompletesUnderAGuestThatOutwritesItsCopy() throws Exception {
        QemuImg.require();
        DiskModel model = new DiskModel(JobRigs.SIZE);
        Path[] c = JobRigs.chain(dir, model);
        Path target = dir.resolve("target.qcow2");
        Qcow2.create(target, JobRigs.SIZE);
        try (Machine m = JobRigs.machine(c[2], true); BlockJobs jobs = new BlockJobs(m.blockLayer())) {
            JobRigs.Guest g = new JobRigs.Guest(m, model, new AtomicLong(), 7);
            g.workload.setReadPercent(100);
            Job j = JobRigs.main(m, "start mirror", () -> {
                BlockNode t = m.blockLayer().openImage("target", target, "qcow2", false);
                Job mj = jobs.mirror("job0", Graph.skipFilters(m.disk(0).backend().root()), t, null,
                        JobOptions.defaults());
                t.unref();
                return mj;
            });
            m.await("ready", j.ready(), JobRigs.OK);
            JobRigs.main(m, "throttle", () -> {
                jobs.setSpeed("job0", 64 << 10);
                return null;
            });
            g.workload.setReadPercent(0);
            g.progress(300);
            JobRigs.main(m, "complete", () -> {
                jobs.complete("job0");
                return null;
            });
            assertEquals(0, (int) m.await("job concluded", j.concluded(), Duration.ofSeconds(30)), j.describe());
            g.progress(50);
            assertNull(g.finish(), "the guest's reads matched the model throughout");
            assertEquals("target", JobRigs.main(m, "device node", () -> m.disk(0).backend().root().name()));
            assertNull(JobRigs.verifyDevice(m, model), "every block of the device matches the model");
            JobRigs.writeBack(m);
        }
        QemuImg.check(target);
        Path ref = dir.resolve("reference.raw");
        model.writeReference(ref);
        QemuImg.compare(target, ref);
    }
}
