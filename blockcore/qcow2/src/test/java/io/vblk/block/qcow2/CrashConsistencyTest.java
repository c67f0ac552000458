package io.vblk.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;

import io.vblk.aio.Errno;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.block.IoVec;

import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The write ordering the driver promises, observed at the file: guest data
 * and refcount blocks are flushed before an L2 table pointing to them is
 * written, a new L2 table is flushed before the L1 entry pointing to it, and
 * a guest flush ends with a flush. Failed writes give their clusters back
 * and failed write-backs are retried, leaving images {@code qemu-img check}
 * finds clean.
 */
class CrashConsistencyTest {
    private static final int CS = 65536;

    /** qcow2 -> recorder -> file, built by hand so the recorder sits under the format. */
    private static BlockNode open(Qcow2Env env, Path img, RecordingFilter rec) {
        return env.main("open", () -> {
            BlockNode file = env.layer.openFile("q-file", img, false);
            BlockNode r = env.layer.addNode("q-rec", rec, false);
            r.attachChild(file, "file", ChildRole.FILTERED);
            file.unref();
            BlockNode q = env.layer.addNode("q", Qcow2Format.INSTANCE.open(env.layer, "q", r, false), false);
            q.attachChild(r, "file", ChildRole.FILE);
            r.unref();
            return q;
        });
    }

    private static int index(List<RecordingFilter.Op> ops, int from, char kind, long offset) {
        for (int i = from; i < ops.size(); i++) {
            RecordingFilter.Op o = ops.get(i);
            if (o.kind() == kind && (kind == 'F' || o.offset() == offset)) {
                return i;
            }
        }
        return -1;
    }

    /** A flush strictly between positions a and b. */
    private static boolean flushBetween(List<RecordingFilter.Op> ops, int a, int b) {
        for (int i = a + 1; i < b; i++) {
            if (ops.get(i).kind() == 'F') {
                return true;
            }
        }
        return false;
    }

    @Test
    void allocatingWriteThenFlushIsOrdered(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("o.qcow2");
        Qcow2.create(img, 64L * CS, CS, null, null);
        RecordingFilter rec = new RecordingFilter();
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode q = open(env, img, rec);
            Qcow2Driver d = Qcow2Env.driver(q);
            long l1 = d.header().l1TableOffset;
            long refblock = d.refcounts().table().get(0) & L2Entry.OFFSET_MASK;
            env.write(q, 5L * CS + 100, Qcow2Env.pattern(4096, 0x42));
            long l2 = d.map().l2Offset(0);
            long data = L2Entry.hostOffset(d.map().peek(0).getLong(5));
            assertTrue(l2 > 0 && data > 0, "allocated an L2 table and a data cluster");
            assertEquals(List.of(new RecordingFilter.Op('W', data, CS)), rec.ops,
                    "the write itself only writes data (with its COW); metadata waits in the caches");
            env.flush(q);
            List<RecordingFilter.Op> ops = rec.ops;
            int iData = index(ops, 0, 'W', data);
            int iRefblock = index(ops, 0, 'W', refblock);
            int iL2 = index(ops, 0, 'W', l2);
            int iL1 = index(ops, 0, 'W', l1);
            assertTrue(iData >= 0 && iRefblock > iData && iL2 > iRefblock && iL1 > iL2, ops.toString());
            assertTrue(flushBetween(ops, iRefblock, iL2), "refcounts and data are stable before the L2 table: " + ops);
            assertTrue(flushBetween(ops, iL2, iL1), "the L2 table is stable before the L1 entry: " + ops);
            assertEquals('F', ops.get(ops.size() - 1).kind(), "a guest flush ends with a flush: " + ops);
            // an overwrite of the now allocated cluster touches no metadata at all
            rec.ops.clear();
            env.write(q, 5L * CS + 8192, Qcow2Env.pattern(512, 0x43));
            assertEquals(List.of(new RecordingFilter.Op('W', data + 8192, 512)), rec.ops, "in-place overwrite");
            env.close(q);
        }
        QemuTools.check(img);
        QemuTools.io(img, "qcow2", "read -P 0x42 " + (5L * CS + 100) + " 4096");
    }

    @Test
    void failedDataWriteGivesItsClustersBack(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("e.qcow2");
        Qcow2.create(img, 64L * CS, CS, null, null);
        RecordingFilter rec = new RecordingFilter();
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode q = open(env, img, rec);
            env.write(q, 0, Qcow2Env.pattern(CS, 1)); // allocates the L2 table and the first data cluster
            rec.failWritesFrom = 0;
            rec.failOnce = true;
            int ret = env.main("failing write", () -> {
                Memory m = new Memory(CS);
                IoVec v = new IoVec(1);
                v.add(Memory.nativeValue(m), CS);
                return q.pwriteSync(3L * CS, CS, v, 0);
            });
            assertEquals(-Errno.EIO, ret);
            assertEquals(1, rec.failures);
            assertArrayEquals(new byte[CS], env.read(q, 3L * CS, CS), "the failed write left the cluster unallocated");
            assertEquals(0, Qcow2Env.driver(q).runsInFlight());
            env.write(q, 4L * CS, Qcow2Env.pattern(CS, 2)); // reuses the given-back cluster
            env.close(q);
        }
        QemuTools.check(img); // no leak from the failed allocation
        QemuTools.io(img, "qcow2", "read -P 1 0 " + CS, "read -P 2 " + 4L * CS + " " + CS, "read -P 0 " + 3L * CS + " " + CS);
    }

    @Test
    void failedWriteBackIsRetriedByTheNextFlush(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("wb.qcow2");
        Qcow2.create(img, 64L * CS, CS, null, null);
        RecordingFilter rec = new RecordingFilter();
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode q = open(env, img, rec);
            Qcow2Driver d = Qcow2Env.driver(q);
            env.write(q, 7L * CS, Qcow2Env.pattern(100, 9));
            long l2 = d.map().l2Offset(0);
            rec.failWritesFrom = l2;
            rec.failWritesTo = l2 + CS;
            rec.failOnce = true;
            assertEquals(-Errno.EIO, (int) env.main("flush", q::flushSync), "the L2 write-back failed");
            assertTrue(d.checkpoint().needed(), "the table is still dirty");
            env.flush(q);
            assertTrue(!d.checkpoint().needed(), "the retry wrote everything");
            env.close(q);
        }
        QemuTools.check(img);
        QemuTools.io(img, "qcow2", "read -P 9 " + 7L * CS + " 100");
    }

    /** Migration hand-off: once inactivated the file is complete for another process, and activation re-reads it. */
    @Test
    void inactivationLeavesACompleteImage(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("m.qcow2");
        Qcow2.create(img, 64L * CS, CS, null, null);
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode q = env.open("m", img, null, false);
            env.write(q, 2L * CS, Qcow2Env.pattern(3 * CS, 5));
            env.discard(q, 3L * CS, CS); // a deferred free the inactivation must apply and write
            assertEquals(0, (int) env.main("inactivate", env.layer::inactivateAll));
            QemuTools.check(img); // another process sees a consistent, leak-free image
            QemuTools.io(img, "qcow2", "write -P 6 " + 10L * CS + " 4096"); // and changes it
            assertEquals(0, (int) env.main("activate", env.layer::activateAll));
            assertArrayEquals(Qcow2Env.pattern(4096, 6), env.read(q, 10L * CS, 4096), "activation re-read the tables");
            env.write(q, 11L * CS, Qcow2Env.pattern(100, 7));
            env.close(q);
        }
        QemuTools.check(img);
        QemuTools.io(img, "qcow2", "read -P 5 " + 2L * CS + " " + CS, "read -P 0 " + 3L * CS + " " + CS,
                "read -P 6 " + 10L * CS + " 4096", "read -P 7 " + 11L * CS + " 100");
    }
}
