package io.vblk.cli;

import io.vblk.daemon.DaemonMain;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.Callable;

import picocli.CommandLine.Command;
import picocli.CommandLine.Unmatched;

/**
 * {@code vblk daemon}: qemu-storage-daemon's command line and QMP monitor
 * ({@link DaemonMain}). Its options are qsd's, not picocli's, so
 * {@link Main#execute} hands the words after {@code daemon} over untouched;
 * this class is what {@code vblk --help} lists.
 */
@Command(name = "daemon",
        description = "A drop-in for qemu-storage-daemon: --blockdev, --export type=vhost-user-blk, --object iothread, "
                + "--chardev/--monitor (QMP), --pidfile, --daemonize. 'vblk daemon --help' lists them.")
final class DaemonCommand implements Callable<Integer> {
    @Unmatched
    List<String> args = List.of();

    @Override
    public Integer call() {
        return run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args);
    }

    static int run(PrintWriter out, PrintWriter err, List<String> args) {
        String version;
        try {
            version = new Main.Version().getVersion()[0].replaceFirst("^vblk ", "");
        } catch (IOException e) {
            version = "unknown";
        }
        try (PrintStream o = writerStream(out); PrintStream e = writerStream(err)) {
            return DaemonMain.run(args, o, e, version);
        }
    }

    /** A PrintStream onto a PrintWriter that flushes every line (the daemon's readiness line must not linger). */
    private static PrintStream writerStream(PrintWriter w) {
        return new PrintStream(new OutputStream() {
            private final ByteArrayOutputStream buf = new ByteArrayOutputStream();

            @Override
            public void write(int b) {
                buf.write(b);
                if (b == '\n') {
                    flush();
                }
            }

            @Override
            public void flush() {
                w.print(buf.toString(StandardCharsets.UTF_8));
                w.flush();
                buf.reset();
            }
        }, true, StandardCharsets.UTF_8);
    }
}
