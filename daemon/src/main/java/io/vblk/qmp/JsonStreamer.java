package io.vblk.qmp;

import java.io.ByteArrayOutputStream;
import java.util.function.Consumer;

/**
 * Cuts a byte stream into complete top-level JSON texts without parsing
 * them: QEMU's json-streamer (qobject/json-streamer.c). It counts braces
 * and brackets outside strings, so a request may arrive in any number of
 * reads, several may arrive in one, and newlines are optional. A text is
 * handed on when its outermost bracket closes (or, for a bare scalar, at
 * the next whitespace); Jackson then parses it. Like QEMU's, it gives up
 * on a text that is too deep or too large, or on a stray closing bracket,
 * reports the problem and starts afresh, so one bad request never stops
 * the monitor.
 */
public final class JsonStreamer {
    /** QEMU's MAX_NESTING. */
    public static final int MAX_NESTING = 1024;
    /** QEMU's MAX_TOKEN_SIZE (64 MiB) is far more than a request needs; 16 MiB here. */
    public static final int MAX_SIZE = 16 << 20;

    /** A complete text, or (text == null) a problem to report. */
    public record Piece(String text, String problem) {
    }

    private final Consumer<Piece> out;
    private final ByteArrayOutputStream cur = new ByteArrayOutputStream();
    private int depth;
    /** The closer each open bracket expects, innermost last. */
    private final byte[] closers = new byte[MAX_NESTING + 1];
    private boolean inString;
    private boolean escape;
    private boolean scalar;
    /** After an error: skip until the stream is back at depth 0 between texts (QEMU resyncs the same way). */
    private boolean skipping;

    public JsonStreamer(Consumer<Piece> out) {
        this.out = out;
    }

    public void feed(byte[] b, int off, int len) {
        for (int i = off; i < off + len; i++) {
            feed(b[i]);
        }
    }

    private void feed(byte c) {
        if (skipping) {
            if (c == '\n') {
                skipping = false; // a newline ends a broken request, as QEMU's lexer recovery does
            }
            return;
        }
        if (inString) {
            cur.write(c);
            if (escape) {
                escape = false;
            } else if (c == '\\') {
                escape = true;
            } else if (c == '"') {
                inString = false;
            }
            checkSize();
            return;
        }
        if (scalar) {
            if (isSpace(c)) {
                emit();
                return;
            }
            if (c == '{' || c == '[' || c == '}' || c == ']' || c == '"') {
                emit();
            } else {
                cur.write(c);
                checkSize();
                return;
            }
        }
        switch (c) {
            case '{':
            case '[':
                if (depth >= MAX_NESTING) {
                    fail("JSON parse error, nesting too deep");
                    return;
                }
                closers[depth++] = c == '{' ? (byte) '}' : (byte) ']';
                cur.write(c);
                return;
            case '}':
            case ']':
                if (depth == 0) {
                    fail("JSON parse error, stray '" + (char) c + "'");
                    skipping = false;
                    return;
                }
                if (closers[depth - 1] != c) {
                    fail("JSON parse error, '" + (char) c + "' does not close '" + (closers[depth - 1] == '}' ? '{' : '[')
                            + "'");
                    return;
                }
                depth--;
                cur.write(c);
                if (depth == 0) {
                    emit();
                }
                return;
            case '"':
                inString = true;
                cur.write(c);
                if (depth == 0) {
                    scalar = false; // a top-level string: ends with its quote, handled below
                }
                checkSize();
                return;
            default:
                if (isSpace(c)) {
                    if (depth > 0) {
                        cur.write(c);
                    } else if (cur.size() > 0) {
                        emit(); // a top-level string just closed
                    }
                    return;
                }
                cur.write(c);
                if (depth == 0) {
                    scalar = true;
                }
                checkSize();
        }
    }

    private static boolean isSpace(byte c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
    }

    private void checkSize() {
        if (cur.size() > MAX_SIZE) {
            fail("JSON parse error, request larger than " + MAX_SIZE + " bytes");
        }
    }

    private void emit() {
        String t = cur.toString(java.nio.charset.StandardCharsets.UTF_8);
        reset();
        out.accept(new Piece(t, null));
    }

    private void fail(String why) {
        reset();
        skipping = true;
        out.accept(new Piece(null, why));
    }

    private void reset() {
        cur.reset();
        depth = 0;
        inString = false;
        escape = false;
        scalar = false;
    }

    /** The stream ended: a partial text is dropped (the client went away in the middle of it). */
    public boolean hasPartial() {
        return cur.size() > 0;
    }
}
