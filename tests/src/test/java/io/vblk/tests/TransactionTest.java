package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlockChild;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.guest.Machine;
import io.vblk.txn.ExternalSnapshot;
import io.vblk.txn.Transaction;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code transaction} with {@code blockdev-snapshot-sync} actions on a disk
 * the guest keeps writing and verifying through an IOThread: a successful
 * snapshot puts a qcow2 overlay on top (the guest's data intact through it,
 * the images clean for {@code qemu-img check}); a transaction whose second
 * action fails leaves the graph, the device and the directory exactly as
 * they were.
 */
@Tag("concurrency")
class TransactionTest {
    @TempDir
    Path dir;

    /** The graph as structure: every node with its context, flags and children; every backend's root and state. */
    static String structure(Machine m) {
        return JobRigs.main(m, "graph structure", () -> {
            BlockLayer l = m.blockLayer();
            TreeMap<String, String> out = new TreeMap<>();
            for (BlockNode n : l.nodes()) {
                StringBuilder sb = new StringBuilder(n.context().name()).append(n.isReadOnly() ? " ro" : " rw")
                        .append(n.isInactive() ? " inactive" : "").append(" quiesce=").append(n.quiesceCounter());
                for (BlockChild c : n.children()) {
                    sb.append(' ').append(c.role()).append("->").append(c.node().name());
                }
                sb.append(" parents=").append(n.parents().size());
                out.put("node " + n.name(), sb.toString());
            }
            for (var b : l.backends()) {
                out.put("backend " + b.name(), b.root().name() + (b.isQuiesced() ? " quiesced" : "") + " "
                        + b.root().context().name());
            }
            out.put("io0 external", String.valueOf(m.iothread("io0").context().externalDisableCount()));
            return out.toString();
        });
    }

    @Test
    void aFailingActionLeavesGraphDeviceAndFilesAsBefore() throws Exception {
        DiskModel model = new DiskModel(JobRigs.SIZE);
        Path[] c = JobRigs.chain(dir, model);
        try (Machine m = JobRigs.machine(c[2], true)) {
            JobRigs.Guest g = new JobRigs.Guest(m, model, new AtomicLong(), 7);
            g.progress(100);
            String before = structure(m);
            List<String> files = listing();
            Path existing = Files.write(dir.resolve("taken.qcow2"), new byte[] {1});
            BlockException e = assertThrows(BlockException.class, () -> JobRigs.main(m, "transaction", () -> {
                BlockNode top = m.disk(0).backend().root();
                Transaction.run(m.blockLayer(), List.of(
                        new ExternalSnapshot(m.blockLayer(), top, dir.resolve("snap1.qcow2"), "snap1"),
                        new ExternalSnapshot(m.blockLayer(), top.child(ChildRole.BACKING), existing, "snap2")));
                return null;
            }));
            assertTrue(e.getMessage().contains("already exists"), e.getMessage());
            g.progress(100); // the device still serves the guest
            assertEquals(before, structure(m), "graph and device exactly as before");
            Files.delete(existing);
            assertEquals(files, listing(), "the first action's overlay file is gone");
            assertNull(m.blockLayer().node("snap1"));
            assertNull(g.finish(), "the guest's reads matched the model");
            assertNull(JobRigs.verifyDevice(m, model));
        }
    }

    @Test
    void aSnapshotUnderGuestWritesKeepsEveryBlock() throws Exception {
        QemuImg.require();
        DiskModel model = new DiskModel(JobRigs.SIZE);
        Path[] c = JobRigs.chain(dir, model);
        Path snap = dir.resolve("snap.qcow2");
        try (Machine m = JobRigs.machine(c[2], true)) {
            JobRigs.Guest g = new JobRigs.Guest(m, model, new AtomicLong(), 11);
            g.progress(100);
            JobRigs.main(m, "transaction", () -> {
                Transaction.run(m.blockLayer(), List.of(
                        new ExternalSnapshot(m.blockLayer(), m.disk(0).backend().root(), snap, "snap")));
                return null;
            });
            g.progress(200);
            assertNull(g.finish(), "the guest's reads matched the model");
            assertNull(JobRigs.verifyDevice(m, model));
            assertEquals("snap", JobRigs.main(m, "root", () -> m.disk(0).backend().root().name()));
            assertTrue(JobRigs.main(m, "old top", () -> m.blockLayer().node("disk0").isReadOnly()),
                    "the old top is a read-only backing file now");
            assertFalse(JobRigs.main(m, "overlay", () -> m.blockLayer().node("snap").isReadOnly()));
            JobRigs.writeBack(m);
        }
        assertEquals(c[2].toAbsolutePath().toString(), QemuImg.backingFile(snap));
        QemuImg.check(snap);
        QemuImg.check(c[2]);
        Path ref = dir.resolve("reference.raw");
        model.writeReference(ref);
        QemuImg.compare(snap, ref);
    }

    private List<String> listing() throws java.io.IOException {
        try (var s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }
}
