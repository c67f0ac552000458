package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.opentest4j.AssertionFailedError;

/**
 * The command port's line protocol against a scripted guest (a thread
 * playing the initramfs's command loop): output and status are split at the
 * end marker of the command's own id, even after output without a final
 * newline or a marker of another id; a restarted loop and a silent guest
 * fail the command with a message instead of hanging. No QEMU needed.
 */
class GuestShellTest {
    private static final Duration BOUND = Duration.ofSeconds(30);

    /** Answers each command line "ID WORD" as the scripted guest does for WORD; ends at EOF. */
    private static void scriptedGuest(Path sock) {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(sock));
            OutputStream out = Channels.newOutputStream(ch);
            BufferedReader in = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch),
                    StandardCharsets.UTF_8));
            write(out, "kernel noise\n@@VBLK-READY 6.1-test 131072@@\n");
            String line;
            while ((line = in.readLine()) != null) {
                String id = line.substring(0, line.indexOf(' '));
                switch (line.substring(id.length() + 1)) {
                    case "two-lines" -> write(out, "a\nb\n@@VBLK-END " + id + " 0@@\n");
                    case "no-newline" -> write(out, "partial@@VBLK-END " + id + " 3@@\n");
                    case "other-id" -> write(out, "@@VBLK-END x.99 7@@\nmine\n@@VBLK-END " + id + " 1@@\n");
                    case "restart" -> write(out, "dying\n@@VBLK-READY 6.1-test 131072@@\n");
                    default -> { } // silence
                }
            }
        } catch (IOException e) {
            // the test closed the port
        }
    }

    private static void write(OutputStream out, String s) throws IOException {
        out.write(s.getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    @Test
    void outputAndStatusAreSplitAtTheCommandsOwnEndMarker(@TempDir Path dir) throws Exception {
        try (UnixListener l = new UnixListener(dir.resolve("ttyS1.sock"))) {
            Thread guest = new Thread(() -> scriptedGuest(l.path()), "scripted-guest");
            guest.setDaemon(true);
            guest.start();
            try (GuestShell shell = GuestShell.accept("fake", l, ProcessHandle.current(), BOUND,
                    dir.resolve("ttyS1.log"), () -> "")) {
                assertTrue(shell.awaitReady(BOUND, () -> "").contains("6.1-test"));
                assertEquals(new GuestResult("two-lines", 0, "a\nb\n"), shell.run("two-lines", BOUND, () -> ""));
                assertEquals(new GuestResult("no-newline", 3, "partial"), shell.run("no-newline", BOUND, () -> ""));
                assertEquals(new GuestResult("other-id", 1, "@@VBLK-END x.99 7@@\nmine\n"),
                        shell.run("other-id", BOUND, () -> ""));
                assertThrows(IllegalArgumentException.class, () -> shell.run("a\nb", BOUND, () -> ""));
                AssertionFailedError restarted = assertThrows(AssertionFailedError.class,
                        () -> shell.run("restart", BOUND, () -> ""));
                assertTrue(restarted.getMessage().contains("command loop restarted"), restarted.getMessage());
                AssertionFailedError silent = assertThrows(AssertionFailedError.class,
                        () -> shell.run("silence", Duration.ofMillis(300), () -> "the diagnosis"));
                assertTrue(silent.getMessage().contains("waited PT0.3S for the end of 'silence'")
                        && silent.getMessage().contains("the diagnosis"), silent.getMessage());
            }
        }
    }
}
