package io.vblk.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;

import io.vblk.aio.AioWait;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;
import io.vblk.block.qcow2.Qcow2;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The mirror's slot budget and ops list (QEMU's {@code ops_in_flight},
 * {@code buf_free_count}): who a waiter waits on, with and without bug 010's
 * fix, and a mirror whose ops wait for slots while the guest rewrites the
 * ranges they copy.
 */
@Tag("concurrency")
class MirrorOpsTest {
    @TempDir
    Path dir;

    @Test
    void aWaiterWaitsOnlyOnAnOpHoldingSlotsUnlessTheLegacySwitchIsOn() {
        LegacySwitches sw = new LegacySwitches();
        MirrorOps ops = new MirrorOps(65536, 1);
        MirrorOp first = ops.register(0, 65536);
        MirrorOp second = ops.register(65536, 65536);
        MirrorOp holder = ops.register(131072, 65536);
        assertTrue(ops.tryTake(holder));
        assertTrue(holder.isInFlight());
        assertFalse(ops.tryTake(first));
        assertFalse(first.isInFlight(), "listed, but holds no slot");
        assertSame(holder, ops.pickToWaitOn(first, sw), "fixed: the op that holds the slot");
        sw.set(LegacyBehavior.MIRROR_WAITS_ON_ANY_OP, true);
        assertSame(first, ops.pickToWaitOn(second, sw), "legacy: the first listed op, holding nothing");
        assertEquals(List.of(second), ops.release(first), "first's waiters retry when it ends");
        List<MirrorOp> woken = ops.release(holder);
        assertEquals(List.of(first), woken);
        assertEquals(1, ops.freeSlots());
        assertTrue(ops.tryTake(second));
    }

    @Test
    void opsWaitingForSlotsCopyEveryRangeTheGuestRewrites() throws Exception {
        Path[] c = JobRig.chain(dir);
        Path t = dir.resolve("target.qcow2");
        Qcow2.create(t, JobRig.SIZE);
        try (JobRig r = new JobRig()) {
            BlockBackend b = r.main("open", () -> {
                BlockNode n = r.layer.openImage("top", c[2], "qcow2", false);
                BlockBackend dev = r.device(n);
                JobRig.write(n, 0, JobRig.pattern((int) JobRig.SIZE, 1)); // all of it allocated: every step copies
                return dev;
            });
            AtomicInteger waits = new AtomicInteger();
            AtomicInteger writesDone = new AtomicInteger();
            List<Memory> keep = new ArrayList<>();
            Job j = r.main("mirror with one slot, four ops a step", () -> {
                BlockNode target = r.layer.openImage("target", t, "qcow2", false);
                MirrorJob m = r.jobs.mirror("m0", b.root(), target, null,
                        JobOptions.defaults().withChunk(4 * 65536).withBufSize(65536));
                target.unref();
                m.setOpSeam(new MirrorJob.OpSeam() {
                    @Override
                    public void waiting(MirrorOp op, MirrorOp on) {
                        // the guest rewrites the range of the op that holds the slot while it copies, and the
                        // range of the op that waits before it read: both must end up in the target
                        if (waits.incrementAndGet() <= 8) {
                            guestWrite(b, on.offset() + 4096, keep, writesDone);
                            guestWrite(b, op.offset() + 8192, keep, writesDone);
                        }
                    }
                });
                return m;
            });
            r.watchdog().await("ready", j.ready());
            assertTrue(waits.get() >= 8, "ops waited for slots: " + waits);
            r.main("the guest's writes end", () -> {
                return AioWait.pollWhile(b.root().context(), () -> writesDone.get() < 16);
            });
            byte[] after = r.main("read", () -> JobRig.readAll(b.root()));
            r.main("complete", () -> r.jobs.complete("m0"));
            assertEquals(0, (int) r.watchdog().await("mirror", j.concluded()), j.describe());
            r.main("check", () -> {
                assertEquals("target", b.root().name());
                assertArrayEquals(after, JobRig.readAll(b.root()));
            });
        }
    }

    /** An asynchronous guest write of 4 KiB (the mirror sees it through its filter). Main loop. */
    private static void guestWrite(BlockBackend b, long off, List<Memory> keep, AtomicInteger done) {
        byte[] data = JobRig.pattern(4096, (int) (off >> 12) + 77);
        Memory m = new Memory(data.length);
        m.write(0, data, 0, data.length);
        keep.add(m);
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), data.length);
        b.pwritev(off, data.length, v, 0, ret -> {
            if (ret == 0) {
                done.incrementAndGet();
            }
        });
    }
}
