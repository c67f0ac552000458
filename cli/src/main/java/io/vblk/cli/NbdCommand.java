package io.vblk.cli;

import io.vblk.aio.AioContextLock;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.nbd.NbdAddress;
import io.vblk.nbd.NbdException;
import io.vblk.nbd.NbdServer;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code vblk nbd}: exports one image over NBD, as {@code qemu-nbd} or
 * {@code qemu-storage-daemon --nbd-server ... --export type=nbd} do. A thin
 * front of {@link NbdServer}: the image is opened in the main loop, moved to
 * an IOThread where its clients are served, and closed (flushed) on
 * SIGINT/SIGTERM.
 */
@Command(name = "nbd", mixinStandardHelpOptions = true,
        description = "Export a disk image over the Network Block Device protocol (qemu-img, qemu-io, nbdinfo, "
                + "nbd-client, fio --ioengine=nbd).",
        footer = {"", "Prints the URI to connect to. Runs until SIGINT/SIGTERM, then closes the connections and the image.",
                "Exit status: 1 the image or socket could not be set up; 2 bad usage."})
final class NbdCommand implements Callable<Integer> {
    private static final Duration SETUP = Duration.ofSeconds(60);

    @Spec
    CommandSpec spec;

    @Option(names = "--socket", paramLabel = "PATH", description = "UNIX socket to listen on (a stale socket file is replaced).")
    Path socket;

    @Option(names = "--port", paramLabel = "N", description = "TCP port to listen on instead (0: any free port).")
    Integer port;

    @Option(names = "--host", paramLabel = "H", defaultValue = "127.0.0.1",
            description = "Address to listen on with --port (default ${DEFAULT-VALUE}; 0.0.0.0 for every interface).")
    String host;

    @Option(names = "--image", paramLabel = "FILE", required = true, description = "Disk image to export.")
    Path image;

    @Option(names = "--format", paramLabel = "FMT", description = "Image format (raw, qcow2); probed when omitted.")
    String format;

    @Option(names = "--name", paramLabel = "NAME", defaultValue = "",
            description = "Export name (default: the empty name, as qemu-nbd).")
    String name;

    @Option(names = "--description", paramLabel = "TEXT", description = "Export description (nbdinfo --list shows it).")
    String description;

    @Option(names = "--writable", description = "Allow writes (the export is read-only otherwise).")
    boolean writable;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        if ((socket == null) == (port == null)) {
            err.println("vblk nbd: give exactly one of --socket PATH and --port N");
            return Main.EXIT_USAGE;
        }
        String problem = ImageChecks.check(image);
        if (problem != null) {
            err.println("vblk nbd: " + problem);
            return Main.EXIT_USAGE;
        }
        NbdAddress addr;
        try {
            addr = socket != null ? NbdAddress.unix(socket) : NbdAddress.inet(host, port);
        } catch (IllegalArgumentException e) {
            err.println("vblk nbd: " + e.getMessage());
            return Main.EXIT_USAGE;
        }
        MainLoop loop = new MainLoop();
        BlockLayer layer = new BlockLayer(loop);
        IOThread io = loop.newIOThread("nbd-io0");
        Watchdog wd = loop.watchdog(SETUP);
        BlockNode node;
        NbdServer server;
        try {
            node = wd.call("open " + image, () -> {
                BlockNode n = layer.openImage("disk0", image, format, !writable);
                layer.setAioContext(n, io.context());
                return n;
            });
            server = wd.call("nbd-server-start", () -> NbdServer.start(layer, addr));
            wd.call("block-export-add", () -> server.addExport(name, description, node, writable));
        } catch (NbdException | BlockException | IllegalArgumentException e) {
            err.println("vblk nbd: " + e.getMessage());
            io.close();
            layer.close();
            loop.close();
            return Main.EXIT_FAILED;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                wd.await("nbd-server-stop", wd.call("nbd-server-stop", server::stop));
                wd.call("close " + image, () -> {
                    AioContextLock.Held h = node.context().acquire();
                    try {
                        node.unref(); // the last reference: qcow2 writes back its metadata, the file is closed
                    } finally {
                        h.close();
                    }
                    return null;
                });
            } finally {
                io.close();
                layer.close();
                loop.close();
                out.println("vblk nbd: stopped");
                out.flush();
                stopped.countDown();
            }
        }, "vblk-nbd-shutdown"));
        String where = socket != null ? "nbd+unix:///" + name + "?socket=" + socket
                : "nbd://" + (host.contains(":") ? "[" + host + "]" : host) + ":" + server.port() + "/" + name;
        out.printf("vblk nbd: serving %s (%s, %d bytes) at %s%n", image, writable ? "writable" : "read-only",
                node.length(), where);
        out.flush();
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return 0;
    }
}
