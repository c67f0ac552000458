package io.vblk.tests.linux;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code vblk daemon} with qemu-storage-daemon's command line, exporting a
 * raw image as vhost-user-blk exactly as {@link StorageDaemon} does with
 * qsd (file node {@code file0}, raw node {@link StorageDaemon#NODE}, export
 * {@code exp0}), plus a QMP monitor it listens on ({@code server=on}: the
 * only chardev kind vblk daemon has). A child JVM, ready when it logs
 * {@code vblk daemon ready}; the test then connects to the monitor.
 */
public final class VblkDaemon extends VhostUserBackend {
    private final Path image;
    private final String fileOptions;
    private QmpClient qmp;

    private VblkDaemon(String name, Path socket, Path image, Path logDir, String fileOptions) {
        super(name, socket, logDir);
        this.image = image;
        this.fileOptions = fileOptions;
    }

    /** Exports {@code image}; {@code fileOptions} are appended to the file node's options (",locking=off"). */
    public static VblkDaemon start(String name, Path socket, Path image, Path logDir, String fileOptions)
            throws IOException, InterruptedException {
        VblkDaemon d = new VblkDaemon(name, socket, image, logDir, fileOptions);
        d.start();
        return d;
    }

    private Path qmpSocket() {
        return socket.resolveSibling(socket.getFileName() + ".qmp");
    }

    @Override
    protected List<String> command() {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add("io.vblk.cli.Main");
        cmd.add("daemon");
        cmd.addAll(List.of("--blockdev", "driver=file,node-name=file0,filename=" + image + fileOptions,
                "--blockdev", "driver=raw,node-name=" + StorageDaemon.NODE + ",file=file0",
                "--export", "type=vhost-user-blk,id=exp0,node-name=" + StorageDaemon.NODE + ",addr.type=unix,addr.path="
                        + socket + ",writable=on,num-queues=1",
                "--chardev", "socket,id=qmp0,path=" + qmpSocket() + ",server=on,wait=off",
                "--monitor", "chardev=qmp0"));
        return cmd;
    }

    @Override
    protected void awaitReady(Process p, ProcessLog log) throws IOException, InterruptedException {
        log.await("vblk daemon ready", READY_BOUND);
        if (qmp != null) {
            qmp.close();
        }
        qmp = QmpClient.connectTo(name, qmpSocket(), READY_BOUND, logDir.resolve(name + "-qmp.log"),
                () -> log.tail(30));
    }

    /** The daemon's QMP monitor. */
    public QmpClient qmp() {
        return qmp;
    }

    /** QMP {@code block_resize} of the exported node. */
    public void blockResize(long bytes) throws IOException, InterruptedException {
        qmp.execute("block_resize", Map.of("node-name", StorageDaemon.NODE, "size", bytes));
    }

    @Override
    public void close() throws IOException {
        if (qmp != null) {
            qmp.close();
        }
        super.close();
    }
}
