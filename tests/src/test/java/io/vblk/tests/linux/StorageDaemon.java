package io.vblk.tests.linux;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code qemu-storage-daemon} exporting a raw image as vhost-user-blk —
 * the reference back-end the harness is proven against — with a QMP
 * monitor for {@code block_resize} and friends. Options are processed in
 * order, so the monitor, given last, connects to the test only once the
 * export listens: that connection is the readiness signal.
 * {@code locking=off} lets two daemons share one image, as a migration
 * between two of them needs (QEMU's documented set-up for shared storage).
 * {@code discard=unmap} passes the guest's discards to the host file (a
 * punched hole), so {@code fstrim} in the guest shrinks the image.
 */
public final class StorageDaemon extends VhostUserBackend {
    /** The node a test resizes: {@code disk0}, the raw format node of the export. */
    public static final String NODE = "disk0";
    private final Path image;
    private final Path qsd;
    private final boolean sharedImage;
    private QmpClient qmp;
    private UnixListener qmpListener;

    private StorageDaemon(String name, Path qsd, Path socket, Path image, Path logDir, boolean sharedImage) {
        super(name, socket, logDir);
        this.qsd = qsd;
        this.image = image;
        this.sharedImage = sharedImage;
    }

    /** Exports {@code image}; {@code sharedImage} turns image locking off for a second daemon on the same file. */
    public static StorageDaemon start(String name, Path socket, Path image, Path logDir, boolean sharedImage)
            throws IOException, InterruptedException {
        StorageDaemon d = new StorageDaemon(name, GuestEnvironment.require().storageDaemon(), socket, image, logDir,
                sharedImage);
        d.start();
        return d;
    }

    private Path qmpSocket() {
        return socket.resolveSibling(socket.getFileName() + ".qmp");
    }

    @Override
    protected List<String> command() {
        List<String> cmd = new ArrayList<>();
        cmd.add(qsd.toString());
        cmd.addAll(List.of("--blockdev", "driver=file,node-name=file0,discard=unmap,filename=" + image
                        + (sharedImage ? ",locking=off" : ""),
                "--blockdev", "driver=raw,node-name=" + NODE + ",discard=unmap,file=file0",
                "--export", "type=vhost-user-blk,id=exp0,node-name=" + NODE + ",addr.type=unix,addr.path=" + socket
                        + ",writable=on,num-queues=1",
                "--chardev", "socket,id=qmp0,path=" + qmpSocket(),
                "--monitor", "chardev=qmp0"));
        return cmd;
    }

    @Override
    protected void beforeStart() throws IOException {
        if (qmp != null) {
            qmp.close();
        }
        qmpListener = new UnixListener(qmpSocket());
    }

    @Override
    protected void awaitReady(Process p, ProcessLog log) throws IOException, InterruptedException {
        try (UnixListener l = qmpListener) {
            qmp = QmpClient.connect(name, l, p.toHandle(), READY_BOUND, logDir.resolve(name + "-qmp.log"),
                    () -> log.tail(30));
        }
    }

    /** The daemon's QMP monitor. */
    public QmpClient qmp() {
        return qmp;
    }

    /** QMP {@code block_resize} of the exported node. */
    public void blockResize(long bytes) throws IOException, InterruptedException {
        qmp.execute("block_resize", Map.of("node-name", NODE, "size", bytes));
    }

    @Override
    public void close() throws IOException {
        if (qmp != null) {
            qmp.close();
        }
        super.close();
    }
}
