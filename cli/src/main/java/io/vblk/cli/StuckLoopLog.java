package io.vblk.cli;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Catches the event loops a run left running when its machine closed.
 * {@code MainLoop.close} asks every loop to stop; a loop still stuck in a
 * wait after the stop bound is unwound by closing the contexts under it, and
 * the only trace of that is its log line ("event loops did not stop; closing
 * contexts under them", or "did not stop; leaving it"). After the run no
 * thread is left to see, so {@link LeftBehind} cannot; this tee on
 * {@code System.err} (where the command's slf4j-simple logger writes) keeps
 * those lines while it is open, and passes everything through.
 */
final class StuckLoopLog implements AutoCloseable {
    private static final String[] MARKERS = {"event loops did not stop", "did not stop; leaving it"};

    private final PrintStream original;
    private final List<String> stuck = new ArrayList<>();

    private StuckLoopLog() {
        this.original = System.err;
        System.setErr(new PrintStream(new Tee(), true, StandardCharsets.UTF_8));
    }

    /** Starts watching {@code System.err}; close to restore it. */
    static StuckLoopLog open() {
        return new StuckLoopLog();
    }

    /** The log lines that reported a loop which did not stop when asked. */
    synchronized List<String> stuckLoops() {
        return List.copyOf(stuck);
    }

    @Override
    public void close() {
        System.err.flush();
        System.setErr(original);
    }

    /** Passes bytes through to the original stream and checks each complete line for a marker. */
    private final class Tee extends OutputStream {
        private final ByteArrayOutputStream line = new ByteArrayOutputStream();

        @Override
        public void write(int b) {
            original.write(b);
            take(b);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            original.write(b, off, len);
            for (int i = off; i < off + len; i++) {
                take(b[i]);
            }
        }

        @Override
        public void flush() {
            original.flush();
        }

        private void take(int b) {
            synchronized (StuckLoopLog.this) {
                if (b != '\n') {
                    line.write(b);
                    return;
                }
                String l = line.toString(StandardCharsets.UTF_8);
                line.reset();
                for (String m : MARKERS) {
                    if (l.contains(m)) {
                        stuck.add(l.trim());
                        break;
                    }
                }
            }
        }
    }
}
