package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;

import io.vblk.aio.AioContextLock;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;
import io.vblk.block.qcow2.Qcow2;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.migration.MigrationHandoff;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * 100 migration hand-offs back and forth between two machines sharing one
 * qcow2 image, each while the guest's verifying workload is in full flight:
 * the source pauses (requests in flight drain), flushes and inactivates its
 * nodes; the destination re-reads the image's metadata, activates and resumes
 * its copy of the guest, which goes on from where its own program stood.
 * Every read is checked against the shared model; at the end every block is
 * read, the image passes {@code qemu-img check}, and {@code qemu-img compare}
 * reads exactly what vblk reads.
 */
@Tag("concurrency")
class MigrationTest {
    private static final int MIGRATIONS = 100;

    @TempDir
    Path dir;

    private static final class Side {
        final Machine m;
        final ModelWorkload w;
        final AtomicBoolean stop;
        CompletableFuture<Void> done;

        Side(Machine m, ModelWorkload w, AtomicBoolean stop) {
            this.m = m;
            this.w = w;
            this.stop = stop;
        }
    }

    @Test
    void hundredHandOffsBackAndForthUnderGuestIo() throws Exception {
        QemuImg.require();
        Path img = dir.resolve("disk.qcow2");
        Qcow2.create(img, JobRigs.SIZE);
        DiskModel model = new DiskModel(JobRigs.SIZE);
        prefill(img, model);
        AtomicLong tags = new AtomicLong();
        AtomicBoolean stop = new AtomicBoolean();
        try (Machine a = JobRigs.machine(img, true); Machine b = JobRigs.machine(img, true)) {
            // b is the incoming side: its guest is set up, then held until the first hand-off
            Side sa = side(a, model, tags, stop, 1);
            Side sb = side(b, model, tags, stop, 2);
            MigrationHandoff.incoming(b, JobRigs.OK);
            sa.done = a.runOnVcpu(0, "workload", p -> sa.w.run(p, stop::get));
            sb.done = b.runOnVcpu(0, "workload", p -> sb.w.run(p, stop::get));
            Side src = sa;
            Side dst = sb;
            long t0 = System.nanoTime();
            for (int i = 0; i < MIGRATIONS; i++) {
                src.m.await("guest I/O on " + (src == sa ? "a" : "b"), src.w.whenCompleted(src.w.completed + 25),
                        JobRigs.OK);
                MigrationHandoff.migrate(src.m, dst.m, JobRigs.OK); // while the guest's requests are in flight
                model.nextEpoch();
                Side t = src;
                src = dst;
                dst = t;
                assertNull(sa.w.problem, "machine a's guest, after hand-off " + (i + 1));
                assertNull(sb.w.problem, "machine b's guest, after hand-off " + (i + 1));
            }
            long ns = System.nanoTime() - t0;
            // the side now running finishes its program; one more hand-off lets the other side finish its own
            src.m.await("guest I/O", src.w.whenCompleted(src.w.completed + 25), JobRigs.OK);
            stop.set(true);
            src.m.await("guest program drained", src.done, JobRigs.OK);
            MigrationHandoff.migrate(src.m, dst.m, JobRigs.OK);
            model.nextEpoch();
            dst.m.await("guest program drained", dst.done, JobRigs.OK);
            assertNull(sa.w.problem, "machine a's guest");
            assertNull(sb.w.problem, "machine b's guest");
            assertTrue(sa.w.writes > MIGRATIONS && sb.w.writes > MIGRATIONS, "both guests wrote");
            Machine last = dst.m;
            assertNull(JobRigs.verifyDevice(last, model), "every block after " + MIGRATIONS + " hand-offs");
            JobRigs.writeBack(last);
            Path view = dir.resolve("vblk-view.raw");
            dumpDevice(last, view);
            System.out.printf("%d hand-offs in %.1f ms (%.2f ms each); %d guest requests; %d blocks of uncertain order%n",
                    MIGRATIONS, ns / 1e6, ns / 1e6 / MIGRATIONS, sa.w.completed + sb.w.completed, model.unknownBlocks());
        }
        QemuImg.check(img);
        QemuImg.compare(img, dir.resolve("vblk-view.raw"));
    }

    private static Side side(Machine m, DiskModel model, AtomicLong tags, AtomicBoolean stop, long seed) {
        LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
        return new Side(m, new ModelWorkload(model, g.driver().queue(0), 4, 40, tags, seed, 0, model.blocks()), stop);
    }

    /**
     * Some data in the image before either machine starts: every 7th block of
     * every 4th cluster — the other clusters are allocated by the guests, on
     * both machines in turn, so each hand-off must carry L2 tables and
     * refcounts across.
     */
    private static void prefill(Path img, DiskModel model) {
        try (MainLoop loop = new MainLoop(); BlockLayer layer = new BlockLayer(loop)) {
            loop.watchdog(JobRigs.OK).run("prefill", () -> {
                BlockNode n = layer.openImage("disk", img, "qcow2", false);
                java.util.function.IntPredicate which = blk -> blk % 7 == 0 && (blk / 16) % 4 == 0;
                for (int blk = 0; blk < model.blocks(); blk++) {
                    if (which.test(blk)) {
                        model.set(blk, -1);
                    }
                }
                DiskModel.writeAll(n, model, which);
                n.unref(); // closing writes the metadata back
            });
        }
    }

    /** What vblk reads from the device, as a raw file. */
    private static void dumpDevice(Machine m, Path out) throws IOException {
        byte[] all = JobRigs.main(m, "read the device", () -> {
            BlockNode n = m.disk(0).backend().root();
            try (AioContextLock.Held h = JobRigs.own(n)) {
                int len = (int) n.length();
                Memory mem = new Memory(len);
                IoVec v = new IoVec(1);
                v.add(Memory.nativeValue(mem), len);
                assertEquals(0, n.preadSync(0, len, v));
                byte[] b = new byte[len];
                mem.read(0, b, 0, len);
                return b;
            }
        });
        try (FileChannel ch = FileChannel.open(out, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(all), 0);
        }
    }
}
