package io.vblk.guest.scenario;

import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlkDebugDriver;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;
import io.vblk.block.NullDriver;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * Bug 021, QEMU 4295c5fc61 "block: fix QEMU crash with scsi-hd and
 * drive_del": {@code blk_remove_bs} dropped the medium with a request in
 * flight; the node's close drained it, and its completion found the
 * backend without a medium.
 */
public final class Bug021DrainBeforeRemoveBs implements Scenario {
    @Override
    public String id() {
        return "021-drain-before-remove-bs";
    }

    @Override
    public String title() {
        return "drain-before-eject";
    }

    @Override
    public String upstreamCommit() {
        return "4295c5fc61";
    }

    @Override
    public String summary() {
        return "blk_remove_bs (drive_del) dropped the root child with I/O in flight: the node's close drained it and the "
                + "completion dereferenced the freed blk->root";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: the main loop (the disk's home: it issues the read, runs drive_del and every completion).",
                "Steps: a read of the backend 'drive0' is held in its node (a blkdebug suspension over a null node; the "
                        + "backend holds the node's only reference). One main-loop task lets the read go (blkdebug "
                        + "schedules its resumption as a bottom half) and removes the backend (BlockLayer.removeBackend, "
                        + "QEMU's drive_del -> blk_remove_bs), so the completion is always behind the removal: the same "
                        + "seam in both runs.",
                "Fix: blk_remove_bs drains the backend first (BlockBackend.detach: pollWhile until nothing is in "
                        + "flight), so the read completes while the medium is there, then the root edge goes.",
                "Legacy (" + LegacyBehavior.NO_DRAIN_IN_BLK_REMOVE_BS + ") drops exactly that drain: the root edge "
                        + "goes at once, the node loses its last reference and closes, and its close polls until its "
                        + "own in-flight count is 0 (QEMU: bdrv_close's drained section), which runs the read's "
                        + "completion into a backend without a medium. QEMU's completion dereferenced the freed "
                        + "blk->root and crashed; vblk's backend counts such a completion "
                        + "(BlockBackend.completionsWithoutMedium, whatever the switch), which is the failure named.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.NO_DRAIN_IN_BLK_REMOVE_BS, legacy);
        try (MainLoop loop = new MainLoop("main-loop", sw); BlockLayer layer = new BlockLayer(loop)) {
            Watchdog ok = loop.watchdog(Duration.ofSeconds(30));
            BlockBackend blk = ok.call("open drive0", () -> {
                BlockNode nul = layer.openNull("drive0-file", NullDriver.Options.of(1L << 20));
                BlockNode dbg = layer.openBlkDebug("drive0-node", nul);
                nul.unref();
                BlockBackend b = layer.newBackend("drive0");
                b.attach(dbg);
                dbg.unref(); // the backend holds the node's only reference, as a -drive's does
                return b;
            });
            BlkDebugDriver dbg = (BlkDebugDriver) blk.root().driver();
            BlkDebugDriver.Suspension inNode = dbg.suspend("the read", BlkDebugDriver.Op.READ, 0, 4096);
            ByteBuffer buf = ByteBuffer.allocateDirect(4096);
            CompletableFuture<Integer> read = new CompletableFuture<>();
            ok.run("issue the read", () -> blk.preadv(0, 4096, IoVec.of(buf), 0, read::complete));
            ok.await("the read held in its node", inNode.reached());
            long t0 = System.nanoTime();
            ok.run("let the read go, then drive_del", () -> {
                inNode.resume(); // its completion: a main-context BH behind this task
                layer.removeBackend(blk);
            });
            int ret = ok.await("the read's completion", read);
            long ns = System.nanoTime() - t0;
            long late = blk.completionsWithoutMedium();
            if (late > 0) {
                return new ScenarioResult(id(), title(), legacy, true, "completes a request after its medium was "
                        + "ejected", ns, hangBound, late + " completion(s) of drive0 ran after blk_remove_bs dropped "
                        + "its node (read ret " + ret + ")", null);
            }
            if (blk.root() != null) {
                throw new IllegalStateException(id() + ": drive0 still has its medium; not staged");
            }
            return new ScenarioResult(id(), title(), legacy, false, ns, hangBound,
                    "blk_remove_bs drained the read first (ret " + ret + "), then dropped the medium", null);
        }
    }
}
