package io.vblk.aio;

import java.time.Duration;

/**
 * A wait that did not finish before its watchdog's deadline. Carries the dump
 * of every event loop taken at expiry, so a hang is a diagnosis, not a stall.
 */
public final class HangDetectedException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String what;
    private final Duration deadline;
    private final String dump;

    public HangDetectedException(String what, Duration deadline, String dump) {
        super("hang detected: " + what + " did not finish within " + deadline.toMillis() + " ms\n" + dump);
        this.what = what;
        this.deadline = deadline;
        this.dump = dump;
    }

    public String what() {
        return what;
    }

    public Duration deadline() {
        return deadline;
    }

    public String dump() {
        return dump;
    }
}
