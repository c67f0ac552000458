package io.vblk.block;

import com.sun.jna.Memory;

import io.vblk.aio.IOThread;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;

/** A machine's event loops and block layer for tests, with helpers to run code in the main loop. */
final class BlockTestSupport implements AutoCloseable {
    static final Duration OK = Duration.ofSeconds(60);
    static final Duration HANG = Duration.ofSeconds(2);

    final MainLoop loop;
    final BlockLayer layer;

    BlockTestSupport() {
        this(new LegacySwitches());
    }

    BlockTestSupport(LegacySwitches legacy) {
        loop = new MainLoop(legacy);
        layer = new BlockLayer(loop);
    }

    IOThread iothread(String name) {
        return loop.newIOThread(name);
    }

    Watchdog watchdog() {
        return loop.watchdog(OK);
    }

    /** Runs {@code task} in the main loop and waits for it (bounded). */
    <T> T main(String what, Callable<T> task) {
        return watchdog().call(what, task);
    }

    void main(String what, Runnable task) {
        watchdog().run(what, task);
    }

    static Path tempImage(Path dir, String name, byte[] content) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, content);
        return p;
    }

    /** A native buffer with an I/O vector over it, for requests in tests. */
    static final class Buf {
        final Memory mem;
        final IoVec iov;
        final int size;

        Buf(int size) {
            this.size = size;
            mem = new Memory(Math.max(1, size));
            iov = new IoVec(1);
            iov.add(Memory.nativeValue(mem), size);
        }

        byte[] bytes() {
            byte[] b = new byte[size];
            mem.read(0, b, 0, size);
            return b;
        }

        Buf fill(byte[] b) {
            mem.write(0, b, 0, b.length);
            return this;
        }
    }

    @Override
    public void close() {
        layer.close();
        loop.close();
    }
}
