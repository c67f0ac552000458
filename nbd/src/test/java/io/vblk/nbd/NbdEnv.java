package io.vblk.nbd;

import io.vblk.aio.AioContextLock;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * A main loop, an IOThread, a block layer and an NBD server on a UNIX socket,
 * for tests: images are opened in the main loop and moved to the IOThread,
 * where their exports' clients then run.
 */
final class NbdEnv implements AutoCloseable {
    static final Duration OK = Duration.ofSeconds(60);

    final MainLoop loop = new MainLoop();
    final BlockLayer layer = new BlockLayer(loop);
    final IOThread io = loop.newIOThread("nbd-io");
    final Path socket;
    final NbdServer server;
    private final List<BlockNode> opened = new ArrayList<>();

    NbdEnv(Path dir) {
        socket = dir.resolve("nbd.sock");
        server = main("nbd-server-start", () -> NbdServer.start(layer, NbdAddress.unix(socket)));
    }

    Watchdog watchdog() {
        return loop.watchdog(OK);
    }

    <T> T main(String what, Callable<T> task) {
        return watchdog().call(what, task);
    }

    /** Opens {@code img} as node {@code name} and moves it to the IOThread. */
    BlockNode open(String name, Path img, String format, boolean readOnly) {
        return main("open " + name, () -> {
            BlockNode n = layer.openImage(name, img, format, readOnly);
            layer.setAioContext(n, io.context());
            opened.add(n);
            return n;
        });
    }

    NbdExport export(String name, BlockNode node, boolean writable) {
        return main("block-export-add " + name, () -> server.addExport(name, "vblk test export " + name, node, writable));
    }

    String uri(String name) {
        return "nbd+unix:///" + name + "?socket=" + socket;
    }

    /** Removes an export and waits until it is deleted. */
    void remove(String name, boolean hard) {
        watchdog().await("export '" + name + "' deleted", main("block-export-del", () -> server.removeExport(name, hard)));
    }

    @Override
    public void close() {
        try {
            watchdog().await("nbd-server-stop", main("nbd-server-stop", server::stop));
            main("close nodes", () -> {
                for (BlockNode n : opened) {
                    try (AioContextLock.Held h = n.context().acquire()) {
                        n.unref(); // the last reference: the image is written back and closed
                    }
                }
                return null;
            });
        } finally {
            io.close();
            layer.close();
            loop.close();
        }
    }
}
