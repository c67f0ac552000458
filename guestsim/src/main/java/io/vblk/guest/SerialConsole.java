package io.vblk.guest;

import java.util.ArrayList;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The COM1 UART as far as a guest printing lines needs it: bytes written to
 * the transmit register are gathered into lines, kept for tests to read and
 * echoed to the log.
 */
public final class SerialConsole {
    private static final Logger LOG = LoggerFactory.getLogger("io.vblk.guest.serial");

    private final StringBuilder partial = new StringBuilder();
    private final List<String> lines = new ArrayList<>();
    private volatile LineListener listener;

    /** Sees each complete line as it is printed. */
    @FunctionalInterface
    public interface LineListener {
        void line(String text);
    }

    public void setListener(LineListener l) {
        listener = l;
    }

    void write(int b) {
        String line = null;
        synchronized (this) {
            if (b == '\n') {
                line = partial.toString();
                partial.setLength(0);
                lines.add(line);
            } else if (b != '\r') {
                partial.append((char) (b & 0xff));
            }
        }
        if (line != null) {
            LOG.info("{}", line);
            LineListener l = listener;
            if (l != null) {
                l.line(line);
            }
        }
    }

    public synchronized List<String> lines() {
        return List.copyOf(lines);
    }

    public synchronized void clear() {
        lines.clear();
        partial.setLength(0);
    }
}
