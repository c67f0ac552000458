package io.vblk.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.sun.jna.Memory;

import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;

/**
 * A machine's main loop and block layer for the qcow2 tests, with
 * synchronous helpers that run in the main loop under a watchdog (a hang
 * fails the test with a dump of every event loop, no sleeping).
 */
final class Qcow2Env implements AutoCloseable {
    static final Duration OK = Duration.ofSeconds(60);

    final MainLoop loop;
    final BlockLayer layer;

    Qcow2Env() {
        this(null);
    }

    /** With {@code format} registered over the default qcow2 format (e.g. small caches). */
    Qcow2Env(Qcow2Format format) {
        loop = new MainLoop();
        layer = new BlockLayer(loop);
        if (format != null) {
            layer.registerFormat(format);
        }
    }

    Watchdog watchdog() {
        return loop.watchdog(OK);
    }

    <T> T main(String what, Callable<T> task) {
        return watchdog().call(what, task);
    }

    void main(String what, Runnable task) {
        watchdog().run(what, task);
    }

    BlockNode open(String name, Path img, String format, boolean readOnly) {
        return main("open " + img, () -> layer.openImage(name, img, format, readOnly));
    }

    byte[] read(BlockNode n, long off, int len) {
        return main("read", () -> {
            Memory m = new Memory(Math.max(1, len));
            IoVec v = new IoVec(1);
            v.add(Memory.nativeValue(m), len);
            assertEquals(0, n.preadSync(off, len, v), "read at " + off);
            return m.getByteArray(0, len);
        });
    }

    void write(BlockNode n, long off, byte[] data) {
        main("write", () -> {
            Memory m = new Memory(Math.max(1, data.length));
            m.write(0, data, 0, data.length);
            IoVec v = new IoVec(1);
            v.add(Memory.nativeValue(m), data.length);
            assertEquals(0, n.pwriteSync(off, data.length, v, 0), "write at " + off);
        });
    }

    void writeZeroes(BlockNode n, long off, long len, int flags) {
        main("write zeroes", () -> assertEquals(0, n.pwriteZeroesSync(off, len, flags), "write zeroes at " + off));
    }

    void discard(BlockNode n, long off, long len) {
        main("discard", () -> assertEquals(0, n.pdiscardSync(off, len), "discard at " + off));
    }

    void flush(BlockNode n) {
        main("flush", () -> assertEquals(0, n.flushSync(), "flush"));
    }

    void close(BlockNode n) {
        main("close", n::unref);
    }

    static Qcow2Driver driver(BlockNode n) {
        return (Qcow2Driver) n.driver();
    }

    static byte[] pattern(int len, int value) {
        byte[] b = new byte[len];
        java.util.Arrays.fill(b, (byte) value);
        return b;
    }

    static void writeRaw(Path p, byte[] content) throws IOException {
        Files.write(p, content);
    }

    @Override
    public void close() {
        layer.close();
        loop.close();
    }
}
