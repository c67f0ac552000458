package io.vblk.block.rbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.MainLoop;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import com.sun.jna.Memory;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A cluster that goes away under a node: its own one-node cluster, whose
 * BlueStore OSD is SIGKILLed. With {@code rados_osd_op_timeout} short, a
 * write in flight fails with {@code -ETIMEDOUT} into the caller (the
 * werror/rerror policy above) instead of hanging, and the node still closes
 * within the driver's close bound. The OSD then restarts on its data: what
 * was written before the kill reads back, and the failed write, retried,
 * succeeds.
 */
@Tag("rbd")
class RbdClusterLossTest {
    private static final Duration BOUND = Duration.ofSeconds(120);
    private static CephCluster cluster;

    @BeforeAll
    static void startCluster() throws Exception {
        cluster = CephCluster.start();
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    void aWriteToAVanishedClusterFailsWithAnErrnoAndTheNodeStillCloses() throws Exception {
        cluster.rbd("create", "--size", "8M", "rbd/gone");
        try (MainLoop loop = new MainLoop(); BlockLayer layer = new BlockLayer(loop)) {
            BlockNode n = loop.watchdog(BOUND).call("open", () -> layer.openProtocol("disk",
                    cluster.filename("gone") + ":rados_osd_op_timeout=5", false));
            Memory m = new Memory(4096);
            m.setMemory(0, 4096, (byte) 7);
            IoVec v = new IoVec(1);
            v.add(Memory.nativeValue(m), 4096);
            assertEquals(0, loop.watchdog(BOUND).call("write", () -> n.pwriteSync(0, 4096, v, 0)));

            cluster.killOsd();
            CompletableFuture<Integer> ret = new CompletableFuture<>();
            long t0 = System.nanoTime();
            loop.watchdog(BOUND).run("submit", () -> n.pwritev(4096, 4096, v, 0, ret::complete));
            int r = loop.watchdog(BOUND).await("the write to a cluster without its OSD", ret);
            assertEquals(-RbdConnection.ETIMEDOUT, r, "the request failed with ETIMEDOUT after rados_osd_op_timeout");
            assertTrue(System.nanoTime() - t0 >= 4_000_000_000L, "it waited for the OSD (the 5 s timeout) first");

            long c0 = System.nanoTime();
            loop.watchdog(BOUND).run("close", n::unref);
            long closeS = (System.nanoTime() - c0) / 1_000_000_000L;
            assertTrue(closeS <= RbdConnection.CLOSE_BOUND.toSeconds() + 5, "close is bounded: " + closeS + " s");
            assertTrue(n.isClosed());

            cluster.restartOsd();
            BlockNode again = loop.watchdog(BOUND).call("reopen", () -> layer.openProtocol("again",
                    cluster.filename("gone") + ":rados_osd_op_timeout=30", false));
            Memory back = new Memory(4096);
            IoVec bv = new IoVec(1);
            bv.add(Memory.nativeValue(back), 4096);
            assertEquals(0, loop.watchdog(BOUND).call("read", () -> again.preadSync(0, 4096, bv)));
            for (int i = 0; i < 4096; i++) {
                assertEquals(7, back.getByte(i), "the write before the kill survived it (byte " + i + ")");
            }
            assertEquals(0, loop.watchdog(BOUND).call("retry", () -> again.pwriteSync(4096, 4096, v, 0)),
                    "the failed write, retried on the restarted OSD");
            loop.watchdog(BOUND).run("close", again::unref);
            assertTrue(loop.failures().isEmpty(), loop.failures().toString());
        }
    }
}
