package io.vblk.job;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.jna.Memory;

import io.vblk.aio.AioWait;
import io.vblk.block.BlkDebugDriver;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockReopen;
import io.vblk.block.ChildRole;
import io.vblk.block.IoVec;

import java.nio.file.Path;
import java.util.Arrays;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A guest write that lands while the stream job reads the same range must
 * win: the job drops its (older) copy. Staged deterministically: the job's
 * read of the backing data is held by a blkdebug suspension between top and
 * mid while the device writes the range, then released.
 */
@Tag("concurrency")
class StreamInterlockTest {
    @TempDir
    Path dir;

    @Test
    void aGuestWriteDuringTheCopysReadWins() throws Exception {
        Path[] c = JobRig.chain(dir);
        long x = 3 * 65536;
        byte[] old = JobRig.pattern(65536, 1);
        byte[] fresh = JobRig.pattern(4096, 2);
        try (JobRig r = new JobRig()) {
            BlockBackend dev = r.main("open", () -> {
                BlockNode top = r.layer.openImage("top", c[2], "qcow2", false);
                BlockBackend d = r.device(top);
                BlockNode mid = top.child(ChildRole.BACKING);
                BlockReopen.setReadOnly(mid, false);
                JobRig.write(mid, x, old);
                BlockReopen.setReadOnly(mid, true);
                BlockNode dbg = r.layer.openBlkDebug("dbg", mid);
                top.replaceChild(top.childEdge(ChildRole.BACKING), dbg);
                dbg.unref();
                return d;
            });
            BlkDebugDriver dbg = (BlkDebugDriver) r.layer.node("dbg").driver();
            BlkDebugDriver.Suspension held = dbg.suspend("stream-read", BlkDebugDriver.Op.READ, x, x + 65536);
            StreamJob j = r.main("stream", () -> r.jobs.stream("s0", dev.root(), r.layer.node("top-backing2"),
                    JobOptions.defaults().withChunk(65536)));
            r.watchdog().await("the stream's read is held", held.reached());
            int[] ret = {1};
            Memory m = new Memory(fresh.length);
            m.write(0, fresh, 0, fresh.length);
            IoVec v = new IoVec(1);
            v.add(Memory.nativeValue(m), fresh.length);
            r.main("guest write into the range being copied", () -> {
                dev.pwritev(x, fresh.length, v, 0, rr -> ret[0] = rr);
                AioWait.pollWhile(r.loop.context(), () -> ret[0] == 1);
            });
            assertEquals(0, ret[0]);
            held.resume();
            assertEquals(0, (int) r.watchdog().await("stream", j.concluded()), j.describe());
            byte[] now = r.main("read back", () -> JobRig.read(dev.root(), x, 65536));
            assertArrayEquals(fresh, Arrays.copyOf(now, fresh.length), "the guest's write survived the stream");
            assertTrue(j.retries() > 0, "the job dropped its copy and looked again: " + j.describe());
            assertArrayEquals(Arrays.copyOfRange(old, fresh.length, old.length),
                    Arrays.copyOfRange(now, fresh.length, now.length), "the rest of the cluster came from mid");
        }
    }
}
