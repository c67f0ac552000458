package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * {@code qemu-storage-daemon --daemonize --pidfile P ...}: the parent exits
 * once startup is complete (the export listens), which is the readiness
 * signal — no waiting for a socket file. The daemon is killed on close.
 */
final class StorageDaemon implements AutoCloseable {
    final ProcessHandle daemon;
    final Path output;

    private StorageDaemon(ProcessHandle daemon, Path output) {
        this.daemon = daemon;
        this.output = output;
    }

    /** The arguments exporting {@code image} (raw) as vhost-user-blk on {@code sock}. */
    static List<String> rawExport(Path image, Path sock, int queues) {
        return List.of("--blockdev", "driver=file,node-name=file0,filename=" + image,
                "--blockdev", "driver=raw,node-name=disk0,file=file0",
                "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + sock
                        + ",writable=on,num-queues=" + queues);
    }

    /**
     * As {@link #rawExport}, behind a throttle filter limited to {@code iops} requests a second, so
     * the guest's requests wait inside the daemon, popped from the ring and not yet used.
     */
    static List<String> throttledRawExport(Path image, Path sock, int iops) {
        return List.of("--object", "throttle-group,id=tg0,x-iops-total=" + iops,
                "--blockdev", "driver=file,node-name=file0,filename=" + image,
                "--blockdev", "driver=raw,node-name=raw0,file=file0",
                "--blockdev", "driver=throttle,node-name=disk0,throttle-group=tg0,file=raw0",
                "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + sock
                        + ",writable=on,num-queues=1");
    }

    static StorageDaemon start(Path dir, String name, List<String> args) throws Exception {
        Path qsd = Tools.storageDaemon();
        Path pidfile = dir.resolve(name + ".pid");
        Path out = dir.resolve(name + ".out");
        List<String> cmd = new ArrayList<>(List.of(qsd.toString(), "--daemonize", "--pidfile", pidfile.toString()));
        cmd.addAll(args);
        Process parent = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile()).start();
        if (!parent.waitFor(60, TimeUnit.SECONDS)) {
            Tools.kill(parent);
            fail("qemu-storage-daemon did not finish starting within 60 s: " + cmd + "\n" + Tools.read(out));
        }
        if (parent.exitValue() != 0) {
            fail("qemu-storage-daemon failed (exit " + parent.exitValue() + "): " + cmd + "\n" + Tools.read(out));
        }
        long pid = Long.parseLong(Files.readString(pidfile).trim());
        Optional<ProcessHandle> h = ProcessHandle.of(pid);
        if (h.isEmpty()) {
            fail("qemu-storage-daemon (pid " + pid + ") is gone right after starting:\n" + Tools.read(out));
        }
        return new StorageDaemon(h.get(), out);
    }

    String report() {
        return "--- qemu-storage-daemon output ---\n" + Tools.read(output);
    }

    @Override
    public void close() throws IOException {
        daemon.destroy();
        try {
            daemon.onExit().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            daemon.destroyForcibly();
        }
    }
}
