package io.vblk.cli;

import io.vblk.bench.Units;
import io.vblk.block.BlockLayer;
import io.vblk.daemon.Daemon;
import io.vblk.daemon.LegacyFilenames;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;
import io.vblk.vhost.VhostUserEvents;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code vblk serve}: exports a disk as a vhost-user-blk back-end on a UNIX
 * socket, as {@code qemu-storage-daemon --export type=vhost-user-blk} does,
 * so QEMU ({@code -device vhost-user-blk-pci}) or {@code vblk boot
 * --vhost-user} can use it. A short form of {@code vblk daemon}: it builds the
 * daemon's own objects (IOThreads, the disk's nodes, a vhost-user-blk
 * export; {@link #build}) and prints the export's front-end events. One
 * front-end at a time; the next is served after a disconnect. Runs until
 * SIGINT or SIGTERM, then flushes the disk and removes the socket.
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Serve a disk to vhost-user-blk front-ends (QEMU, vblk boot --vhost-user) on a UNIX socket.",
        footer = {"", "Prints one line per event (listening, connected, rings started/stopped, disconnected).",
                "Runs until SIGINT/SIGTERM. Exit status: 1 the disk or socket could not be set up; 2 bad usage."})
final class ServeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @picocli.CommandLine.Mixin
    FileOptionsMixin file = new FileOptionsMixin();

    @Option(names = "--socket", paramLabel = "PATH", required = true,
            description = "UNIX socket to listen on (a stale socket file is replaced).")
    Path socket;

    @Option(names = "--image", paramLabel = "FILE", description = "Disk image to serve: a file, or an RBD image as "
            + "rbd:pool/image[@snap][:conf=FILE][:id=USER] (QEMU's filename form).")
    Path image;

    @Option(names = "--null", paramLabel = "SIZE",
            description = "Serve a null device of SIZE bytes instead (suffixes K, M, G; reads are not zeroed, "
                    + "writes dropped), like QEMU's null-co.")
    String nullSize;

    @Option(names = "--format", paramLabel = "FMT", description = "Image format (raw, qcow2); probed when omitted.")
    String format;

    @Option(names = "--iothreads", paramLabel = "N", defaultValue = "1",
            description = "IOThreads serving the queues, round-robin (default ${DEFAULT-VALUE}).")
    int iothreads;

    @Option(names = "--num-queues", paramLabel = "Q", defaultValue = "1",
            description = "Virtqueues offered (GET_QUEUE_NUM; default ${DEFAULT-VALUE}).")
    int numQueues;

    @Option(names = "--read-only", description = "Serve the disk read-only (VIRTIO_BLK_F_RO).")
    boolean readOnly;

    @Option(names = "--serial", paramLabel = "S", description = "Serial (GET_ID), at most 20 characters.")
    String serial;

    @Option(names = "--poll-max-ns", paramLabel = "NS", defaultValue = "32768",
            description = "IOThread adaptive busy-poll bound, 0 disables (default ${DEFAULT-VALUE}).")
    long pollMaxNs;

    /**
     * Test-only switch, hidden from the help: hold the N-th write request
     * after the back-end took it from the avail ring and marked it in flight,
     * announcing it with a "holding write request" line, so a test can kill
     * the back-end with a request in flight at a known step
     * ({@code VblkGuestAcceptanceTest}). Never for production: the held
     * queue serves nothing more until the process ends.
     */
    @Option(names = "--x-hold-after-take", paramLabel = "N", hidden = true)
    Long holdAfterTake;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        String problem = validate();
        if (problem != null) {
            err.println("vblk serve: " + problem);
            return Main.EXIT_USAGE;
        }
        long nul = nullSize == null ? 0 : Units.parseBytes("null", nullSize);
        String version;
        try {
            version = new Main.Version().getVersion()[0].replaceFirst("^vblk ", "");
        } catch (java.io.IOException e) {
            version = "unknown";
        }
        Daemon d = new Daemon(version);
        try {
            d.setVhostUserEvents(id -> printer(out));
            d.onDispatcher(() -> {
                build(d, nul);
                return null;
            });
        } catch (QmpError e) {
            err.println("vblk serve: " + e.desc());
            d.close();
            return Main.EXIT_FAILED;
        } catch (Exception e) {
            err.println("vblk serve: " + e.getMessage());
            d.close();
            return Main.EXIT_FAILED;
        }
        if (holdAfterTake != null) {
            ((io.vblk.daemon.VhostUserBlkExport) d.exports().get("serve")).holdAfterTake(holdAfterTake, line -> {
                out.println("vblk serve: " + line);
                out.flush();
            });
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            try {
                d.close();
            } finally {
                out.println("vblk serve: stopped");
                out.flush();
                stopped.countDown();
            }
        }, "vblk-serve-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);
        out.printf("vblk serve: listening on %s (%s, %d queue(s), %d IOThread(s)%s)%n", socket,
                image != null ? image : "null device of " + nul + " bytes", numQueues, iothreads,
                readOnly ? ", read-only" : "");
        out.flush();
        try {
            stopped.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return 0;
    }

    /**
     * The objects {@code vblk daemon} would build from the equivalent qsd
     * command line: {@code --object iothread,id=serve-ioN,poll-max-ns=…} per
     * IOThread, {@code --blockdev} for the disk (node {@code disk}: a format
     * over a {@code file} node with the file options, an {@code rbd} node, or
     * {@code null-co}), and {@code --export type=vhost-user-blk,id=serve,…}
     * with vblk's {@code x-serial} and {@code x-iothreads}. On the QMP
     * dispatcher thread, as the daemon applies its options.
     */
    private void build(Daemon d, long nul) throws Exception {
        ObjectMapper json = new ObjectMapper();
        ArrayNode threads = json.createArrayNode();
        for (int i = 0; i < iothreads; i++) {
            ObjectNode t = json.createObjectNode();
            t.put("qom-type", "iothread");
            t.put("id", "serve-io" + i);
            t.put("poll-max-ns", pollMaxNs);
            d.objectAdd(QapiArgs.json(t));
            threads.add("serve-io" + i);
        }
        ObjectNode node = json.createObjectNode();
        node.put("node-name", "disk");
        node.put("read-only", readOnly);
        if (image == null) {
            node.put("driver", "null-co");
            node.put("size", nul);
        } else if (BlockLayer.findProtocol(image.toString()) != null) {
            node.setAll(LegacyFilenames.rbd(image.toString()));
            node.putObject("cache").put("direct", file.direct);
        } else {
            node.put("driver", format != null ? format : probe(d, image));
            ObjectNode f = node.putObject("file");
            f.put("driver", "file");
            f.put("filename", image.toString());
            f.put("read-only", readOnly);
            f.put("aio", file.aio);
            f.putObject("cache").put("direct", file.direct).put("no-flush", file.noFlush);
            f.put("discard", file.discard);
            f.put("detect-zeroes", file.detectZeroes);
            f.put("locking", file.locking);
        }
        d.blockdevAdd(QapiArgs.json(node));
        ObjectNode e = json.createObjectNode();
        e.put("type", "vhost-user-blk");
        e.put("id", "serve");
        e.put("node-name", "disk");
        e.putObject("addr").put("type", "unix").put("path", socket.toString());
        e.put("writable", !readOnly);
        e.put("num-queues", numQueues);
        e.put("x-serial", serial != null ? serial : "vblk-serve");
        e.set("x-iothreads", threads);
        d.exports().add(QapiArgs.json(e));
    }

    /** The image's format as the block layer probes it (qsd needs {@code driver}; serve's --format is optional). */
    private static String probe(Daemon d, Path image) throws java.io.IOException {
        byte[] head = new byte[512];
        try (java.io.InputStream in = java.nio.file.Files.newInputStream(image)) {
            int n = in.readNBytes(head, 0, head.length);
            head = java.util.Arrays.copyOf(head, n);
        }
        String best = "raw";
        int score = 0;
        for (io.vblk.block.BlockFormat f : d.layer().formats()) {
            int sc = f.probe(head);
            if (sc > score) {
                score = sc;
                best = f.name();
            }
        }
        return best;
    }

    private String validate() {
        if ((image == null) == (nullSize == null)) {
            return "give exactly one of --image FILE and --null SIZE";
        }
        if (image != null && BlockLayer.findProtocol(image.toString()) == null) { // a protocol's image checks itself
            String p = ImageChecks.check(image);
            if (p != null) {
                return p;
            }
        }
        if (nullSize != null) {
            try {
                if (Units.parseBytes("null", nullSize) < 512) {
                    return "--null needs at least 512 bytes";
                }
            } catch (IllegalArgumentException e) {
                return e.getMessage();
            }
            if (format != null) {
                return "--format applies to --image only";
            }
        }
        if (iothreads < 1 || iothreads > 64) {
            return "--iothreads must be 1..64, not " + iothreads;
        }
        if (numQueues < 1 || numQueues > 64) {
            return "--num-queues must be 1..64, not " + numQueues;
        }
        if (serial != null && serial.length() > 20) {
            return "--serial is at most 20 characters";
        }
        if (pollMaxNs < 0) {
            return "--poll-max-ns must not be negative";
        }
        if (holdAfterTake != null && holdAfterTake < 1) {
            return "--x-hold-after-take counts write requests from 1";
        }
        return null;
    }

    private static VhostUserEvents printer(PrintWriter out) {
        return new VhostUserEvents() {
            @Override
            public void connected(int pid) {
                line("front-end connected" + (pid > 0 ? " (pid " + pid + ")" : ""));
            }

            @Override
            public void disconnected(String why) {
                line("front-end disconnected: " + why);
            }

            @Override
            public void ringsStarted(List<Integer> rings) {
                line("rings " + rings + " started");
            }

            @Override
            public void ringsStopped(List<Integer> rings) {
                line("rings " + rings + " stopped");
            }

            @Override
            public void refused(String request, String why) {
                line("refused " + request + ": " + why);
            }

            private void line(String s) {
                out.println("vblk serve: " + s);
                out.flush();
            }
        };
    }
}
