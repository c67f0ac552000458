package io.vblk.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlockBackend;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.block.qcow2.Qcow2;

import java.nio.file.Path;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Stream, commit and mirror on a qcow2 chain in the main loop, without a guest. */
@Tag("concurrency")
class JobsSmokeTest {
    @TempDir
    Path dir;

    private BlockBackend openChain(JobRig r, Path top) {
        return r.main("open", () -> {
            BlockNode n = r.layer.openImage("top", top, "qcow2", false);
            BlockBackend b = r.device(n);
            write(r, n.child(ChildRole.BACKING).child(ChildRole.BACKING), 0, 1);
            write(r, n.child(ChildRole.BACKING), 65536 * 3, 2);
            write(r, n, 65536 * 5, 3);
            return b;
        });
    }

    private static void write(JobRig r, BlockNode n, long off, int seed) {
        boolean ro = n.isReadOnly();
        if (ro) {
            io.vblk.block.BlockReopen.setReadOnly(n, false);
        }
        JobRig.write(n, off, JobRig.pattern(65536 * 2, seed));
        if (ro) {
            io.vblk.block.BlockReopen.setReadOnly(n, true);
        }
    }

    @Test
    void streamCopiesTheChainIntoTopAndDropsIt() throws Exception {
        Path[] c = JobRig.chain(dir);
        try (JobRig r = new JobRig()) {
            BlockBackend b = openChain(r, c[2]);
            byte[] before = r.main("read", () -> JobRig.readAll(b.root()));
            Job j = r.main("stream", () -> r.jobs.stream("s0", b.root(), null, JobOptions.defaults()));
            assertEquals(0, (int) r.watchdog().await("stream", j.concluded()), j.describe());
            r.main("check", () -> {
                BlockNode top = b.root();
                assertEquals("top", top.name());
                assertNull(top.child(ChildRole.BACKING));
                assertArrayEquals(before, JobRig.readAll(top));
                assertNull(r.layer.node("top-backing"));
            });
        }
    }

    @Test
    void activeCommitPivotsTheDeviceToBase() throws Exception {
        Path[] c = JobRig.chain(dir);
        try (JobRig r = new JobRig()) {
            BlockBackend b = openChain(r, c[2]);
            byte[] before = r.main("read", () -> JobRig.readAll(b.root()));
            Job j = r.main("commit", () -> r.jobs.commit("c0", b.root(), r.layer.node("top-backing2"),
                    JobOptions.defaults()));
            r.watchdog().await("ready", j.ready());
            r.main("complete", () -> r.jobs.complete("c0"));
            assertEquals(0, (int) r.watchdog().await("commit", j.concluded()), j.describe());
            r.main("check", () -> {
                assertEquals("top-backing2", b.root().name());
                assertArrayEquals(before, JobRig.readAll(b.root()));
                assertNull(r.layer.node("top"));
                assertNull(r.layer.node("top-backing"));
            });
        }
    }

    @Test
    void commitOfALowerLayerRewiresTheOverlay() throws Exception {
        Path[] c = JobRig.chain(dir);
        try (JobRig r = new JobRig()) {
            BlockBackend b = openChain(r, c[2]);
            byte[] before = r.main("read", () -> JobRig.readAll(b.root()));
            Job j = r.main("commit", () -> r.jobs.commit("c1", r.layer.node("top-backing"),
                    r.layer.node("top-backing2"), JobOptions.defaults()));
            assertEquals(0, (int) r.watchdog().await("commit", j.concluded()), j.describe());
            r.main("check", () -> {
                assertSame(r.layer.node("top-backing2"), b.root().child(ChildRole.BACKING));
                assertTrue(r.layer.node("top-backing2").isReadOnly());
                assertArrayEquals(before, JobRig.readAll(b.root()));
                assertNull(r.layer.node("top-backing"));
            });
        }
    }

    @Test
    void mirrorPivotsToTheTarget() throws Exception {
        Path[] c = JobRig.chain(dir);
        Path t = dir.resolve("target.qcow2");
        Qcow2.create(t, JobRig.SIZE);
        try (JobRig r = new JobRig()) {
            BlockBackend b = openChain(r, c[2]);
            byte[] before = r.main("read", () -> JobRig.readAll(b.root()));
            Job j = r.main("mirror", () -> {
                BlockNode target = r.layer.openImage("target", t, "qcow2", false);
                MirrorJob m = r.jobs.mirror("m0", b.root(), target, null, JobOptions.defaults());
                target.unref();
                return m;
            });
            r.watchdog().await("ready", j.ready());
            r.main("write while ready", () -> JobRig.write(b.root(), 65536 * 9, JobRig.pattern(4096, 9)));
            byte[] after = r.main("read", () -> JobRig.readAll(b.root()));
            r.main("complete", () -> r.jobs.complete("m0"));
            assertEquals(0, (int) r.watchdog().await("mirror", j.concluded()), j.describe());
            r.main("check", () -> {
                assertEquals("target", b.root().name());
                assertArrayEquals(after, JobRig.readAll(b.root()));
                assertNull(r.layer.node("top"));
            });
            assertTrue(before.length > 0);
        }
    }
}
