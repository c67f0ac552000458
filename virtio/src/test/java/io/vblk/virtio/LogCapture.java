package io.vblk.virtio;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;

/**
 * Captures what slf4j-simple prints (it writes to whatever System.err is at
 * the time of each log call) while still passing it through.
 */
final class LogCapture implements AutoCloseable {
    private final PrintStream original = System.err;
    private final ByteArrayOutputStream buf = new ByteArrayOutputStream();

    LogCapture() {
        PrintStream tee = new PrintStream(new java.io.OutputStream() {
            @Override
            public void write(int b) {
                synchronized (buf) {
                    buf.write(b);
                }
                original.write(b);
            }

            @Override
            public void write(byte[] b, int off, int len) {
                synchronized (buf) {
                    buf.write(b, off, len);
                }
                original.write(b, off, len);
            }
        }, true, StandardCharsets.UTF_8);
        System.setErr(tee);
    }

    String text() {
        synchronized (buf) {
            return buf.toString(StandardCharsets.UTF_8);
        }
    }

    /** Lines containing every one of {@code needles}. */
    long count(String... needles) {
        return text().lines().filter(l -> {
            for (String n : needles) {
                if (!l.contains(n)) {
                    return false;
                }
            }
            return true;
        }).count();
    }

    @Override
    public void close() {
        System.setErr(original);
    }
}
