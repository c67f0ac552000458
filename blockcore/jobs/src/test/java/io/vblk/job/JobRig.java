package io.vblk.job;

import com.sun.jna.Memory;

import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;
import io.vblk.block.qcow2.Qcow2;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.concurrent.Callable;

/** A main loop, block layer and job list for job tests, with qcow2 chain helpers. */
final class JobRig implements AutoCloseable {
    static final long SIZE = 4L << 20;
    final MainLoop loop;
    final BlockLayer layer;
    final BlockJobs jobs;

    JobRig() {
        this(new LegacySwitches());
    }

    JobRig(LegacySwitches sw) {
        loop = new MainLoop(sw);
        layer = new BlockLayer(loop);
        jobs = new BlockJobs(layer);
    }

    Watchdog watchdog() {
        return loop.watchdog(Duration.ofSeconds(60));
    }

    <T> T main(String what, Callable<T> task) {
        return watchdog().call(what, task);
    }

    void main(String what, Runnable task) {
        watchdog().run(what, task);
    }

    /** base.qcow2 <- mid.qcow2 <- top.qcow2 in {@code dir}. */
    static Path[] chain(Path dir) {
        Path base = dir.resolve("base.qcow2");
        Path mid = dir.resolve("mid.qcow2");
        Path top = dir.resolve("top.qcow2");
        Qcow2.create(base, SIZE);
        Qcow2.create(mid, 0, Qcow2.DEFAULT_CLUSTER_SIZE, base.toString(), "qcow2");
        Qcow2.create(top, 0, Qcow2.DEFAULT_CLUSTER_SIZE, mid.toString(), "qcow2");
        return new Path[] {base, mid, top};
    }

    static byte[] pattern(int len, int seed) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++) {
            b[i] = (byte) (seed * 31 + i * 7 + (i >> 9));
        }
        return b;
    }

    static void write(BlockNode n, long off, byte[] data) {
        Memory m = new Memory(data.length);
        m.write(0, data, 0, data.length);
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), data.length);
        int r = n.pwriteSync(off, data.length, v, 0);
        if (r < 0) {
            throw new AssertionError("write at " + off + " failed: " + r);
        }
    }

    static byte[] read(BlockNode n, long off, int len) {
        Memory m = new Memory(len);
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), len);
        int r = n.preadSync(off, len, v);
        if (r < 0) {
            throw new AssertionError("read at " + off + " failed: " + r);
        }
        byte[] b = new byte[len];
        m.read(0, b, 0, len);
        return b;
    }

    static byte[] readAll(BlockNode n) {
        return read(n, 0, (int) n.length());
    }

    static boolean same(byte[] a, byte[] b) {
        return Arrays.equals(a, b);
    }

    BlockBackend device(BlockNode n) {
        BlockBackend b = layer.newBackend("dev-" + n.name());
        b.attach(n);
        n.unref();
        return b;
    }

    @Override
    public void close() {
        jobs.close();
        layer.close();
        loop.close();
    }
}
