package io.vblk.tests.linux;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A storage daemon — {@code vblk daemon} or {@code qemu-storage-daemon},
 * started with the very same arguments — whose {@code --blockdev} options
 * the test gives (an rbd node, a qcow2 on a file, ...) and whose node
 * {@link StorageDaemon#NODE} it exports as vhost-user-blk ({@code exp0}),
 * with a QMP monitor for jobs and {@code blockdev-add}. Where
 * {@link VblkDaemon} and {@link StorageDaemon} export a raw file, this one
 * lets a test run one scenario against both daemons on any node graph.
 * Readiness as there: vblk logs {@code vblk daemon ready} and listens for
 * QMP ({@code server=on}); qsd processes its options in order, so its
 * monitor, given last, connects to the test only once the export listens.
 */
public final class BlockdevDaemon extends VhostUserBackend {
    /** Which program serves the node. */
    public enum Kind {
        VBLK, QSD
    }

    private final Kind kind;
    private final List<String> blockdevs;
    private QmpClient qmp;
    private UnixListener qmpListener;

    private BlockdevDaemon(Kind kind, String name, Path socket, Path logDir, List<String> blockdevs) {
        super(name, socket, logDir);
        this.kind = kind;
        this.blockdevs = List.copyOf(blockdevs);
    }

    /**
     * Starts {@code kind} with one {@code --blockdev} per element of
     * {@code blockdevs} (the last defines, or is, {@link StorageDaemon#NODE})
     * and waits until it serves {@code socket}.
     */
    public static BlockdevDaemon start(Kind kind, String name, Path socket, Path logDir, List<String> blockdevs)
            throws IOException, InterruptedException {
        BlockdevDaemon d = new BlockdevDaemon(kind, name, socket, logDir, blockdevs);
        d.start();
        return d;
    }

    public Kind kind() {
        return kind;
    }

    private Path qmpSocket() {
        return socket.resolveSibling(socket.getFileName() + ".qmp");
    }

    @Override
    protected List<String> command() {
        List<String> cmd = new ArrayList<>();
        if (kind == Kind.QSD) {
            cmd.add(GuestEnvironment.require().storageDaemon().toString());
        } else {
            cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            cmd.add("--enable-native-access=ALL-UNNAMED");
            cmd.add("-cp");
            cmd.add(System.getProperty("java.class.path"));
            cmd.add("io.vblk.cli.Main");
            cmd.add("daemon");
        }
        for (String b : blockdevs) {
            cmd.add("--blockdev");
            cmd.add(b);
        }
        cmd.addAll(List.of("--export", "type=vhost-user-blk,id=exp0,node-name=" + StorageDaemon.NODE
                + ",addr.type=unix,addr.path=" + socket + ",writable=on,num-queues=1"));
        cmd.addAll(List.of("--chardev", "socket,id=qmp0,path=" + qmpSocket()
                + (kind == Kind.VBLK ? ",server=on,wait=off" : ""), "--monitor", "chardev=qmp0"));
        return cmd;
    }

    @Override
    protected void beforeStart() throws IOException {
        if (qmp != null) {
            qmp.close();
            qmp = null;
        }
        if (kind == Kind.QSD) {
            qmpListener = new UnixListener(qmpSocket());
        }
    }

    @Override
    protected void awaitReady(Process p, ProcessLog log) throws IOException, InterruptedException {
        Path transcript = logDir.resolve(name + "-qmp.log");
        if (kind == Kind.QSD) {
            try (UnixListener l = qmpListener) {
                qmp = QmpClient.connect(name, l, p.toHandle(), READY_BOUND, transcript, () -> log.tail(30));
            }
        } else {
            log.await("vblk daemon ready", READY_BOUND);
            qmp = QmpClient.connectTo(name, qmpSocket(), READY_BOUND, transcript, () -> log.tail(30));
        }
    }

    /** The daemon's QMP monitor. */
    public QmpClient qmp() {
        return qmp;
    }

    @Override
    public void close() throws IOException {
        if (qmp != null) {
            qmp.close();
        }
        super.close();
    }
}
