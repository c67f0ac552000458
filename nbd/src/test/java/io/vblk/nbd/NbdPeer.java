package io.vblk.nbd;

import static org.junit.jupiter.api.Assertions.fail;

import io.vblk.block.BlockNode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * An NBD server exporting one image under test: vblk's, or
 * qemu-storage-daemon's (which proves that a test asks of vblk only what
 * QEMU's own server does).
 */
interface NbdPeer extends AutoCloseable {
    String uri();

    @Override
    void close();

    enum Kind { VBLK, QSD }

    static NbdPeer start(Kind kind, Path dir, Path img, String format, String name, boolean writable) {
        return kind == Kind.VBLK ? new Vblk(dir, img, format, name, writable) : new Qsd(dir, img, format, name, writable);
    }

    /** vblk's server in this JVM, the node in an IOThread. */
    final class Vblk implements NbdPeer {
        final NbdEnv env;
        final String name;

        Vblk(Path dir, Path img, String format, String name, boolean writable) {
            env = new NbdEnv(dir);
            this.name = name;
            try {
                BlockNode n = env.open("disk0", img, format, !writable);
                env.export(name, n, writable);
            } catch (RuntimeException e) {
                env.close();
                throw e;
            }
        }

        @Override
        public String uri() {
            return env.uri(name);
        }

        @Override
        public void close() {
            env.close();
        }
    }

    /** qemu-storage-daemon --daemonize: its parent exits once the export listens. */
    final class Qsd implements NbdPeer {
        final Path socket;
        final String name;
        final long pid;

        Qsd(Path dir, Path img, String format, String name, boolean writable) {
            socket = dir.resolve("qsd.sock");
            this.name = name;
            Path pidfile = dir.resolve("qsd.pid");
            List<String> cmd = new ArrayList<>(List.of("qemu-storage-daemon", "--daemonize", "--pidfile", pidfile.toString(),
                    "--blockdev", "driver=file,filename=" + img + ",node-name=f0" + (writable ? "" : ",read-only=on"),
                    "--blockdev", "driver=" + format + ",file=f0,node-name=disk0" + (writable ? "" : ",read-only=on"),
                    "--nbd-server", "addr.type=unix,addr.path=" + socket,
                    "--export", "type=nbd,id=e0,node-name=disk0,name=" + name + ",writable=" + (writable ? "on" : "off")
                            + ",description=qsd test export " + name));
            Tools.ok(cmd.toArray(new String[0]));
            try {
                pid = Long.parseLong(Files.readString(pidfile).trim());
            } catch (java.io.IOException e) {
                throw new AssertionError("qemu-storage-daemon wrote no pid file", e);
            }
        }

        @Override
        public String uri() {
            return "nbd+unix:///" + name + "?socket=" + socket;
        }

        @Override
        public void close() {
            Optional<ProcessHandle> h = ProcessHandle.of(pid);
            if (h.isEmpty()) {
                return;
            }
            h.get().destroy();
            try {
                h.get().onExit().get(Duration.ofSeconds(60).toSeconds(), TimeUnit.SECONDS);
            } catch (Exception e) {
                h.get().destroyForcibly();
                fail("qemu-storage-daemon " + pid + " did not exit after SIGTERM: " + e);
            }
        }
    }
}
