package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * The harness's crash helpers, proven on {@code qemu-storage-daemon} before
 * issue 18 points them at {@code vblk serve}: a daemon killed with SIGKILL
 * while the guest's fio loop runs, and started again with the same
 * arguments, is reconnected to by QEMU ({@code reconnect=1}), after which
 * the guest's I/O goes on and verifies, with no I/O error in its kernel log.
 */
@Tag("linux-guest")
class BackendRestartTest {
    private static final Pattern ITERATIONS = Pattern.compile("fio iterations: (\\d+)");

    @RegisterExtension
    final GuestLogs logs = new GuestLogs();

    @Test
    void killedDaemonRestartsAndQemuReconnects(@TempDir Path tmp) throws Exception {
        GuestEnvironment.require();
        Path image = DiskImages.sparse(tmp.resolve("disk.raw"), 64);
        try (StorageDaemon qsd = StorageDaemon.start("qsd", logs.sockets().resolve("qsd.sock"), image, logs.dir(),
                false);
             LinuxGuest guest = LinuxGuest.boot(logs, qsd.socket(), LinuxGuest.Options.defaults().withReconnect(true),
                     qsd)) {
            guest.check("mkfifo /tmp/first");
            guest.startBackground("fioloop", Fio.verifyLoop(8, "/tmp/first"));
            guest.check("cat /tmp/first"); // the first job has verified: the loop's next job is starting
            qsd.kill9();
            qsd.restart();
            String atRestart = guest.check("cat /tmp/iterations").trim();
            guest.check("touch /tmp/stop");
            GuestResult loop = guest.awaitBackground("fioloop", Duration.ofMinutes(3));
            logs.note("fio loop after the restart: status " + loop.status());
            assertEquals(0, loop.status(), loop + "\n" + guest.describe());
            Matcher it = ITERATIONS.matcher(loop.output());
            assertTrue(it.find(), loop.toString());
            logs.note("fio verify iterations: " + atRestart + " done at the restart, " + it.group(1) + " in all");
            assertTrue(Integer.parseInt(it.group(1)) > Integer.parseInt(atRestart),
                    "fio went on after the reconnect: " + loop);
            assertTrue(guest.qemu().isAlive());
            assertEquals(List.of(), guest.ioErrors(), "I/O errors in the guest's kernel log");
        }
    }
}
