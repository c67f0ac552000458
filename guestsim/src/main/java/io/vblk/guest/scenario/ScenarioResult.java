package io.vblk.guest.scenario;

import java.time.Duration;

/**
 * The outcome of one run of a scenario: whether the bug's failure was
 * detected (a hang found by the watchdog, or another named failure: a lost
 * wake-up, a lost interrupt, a double acquire, a request completed after
 * teardown, a broken invariant) and after how long, or that the run
 * completed and how long it took; with the event-loop dump of a hang.
 *
 * @param failed  whether the failure was detected
 * @param failure what was detected, as a verb phrase ("hangs", "loses the guest's kick"); used when failed
 */
public record ScenarioResult(String id, String title, boolean legacy, boolean failed, String failure, long nanos,
                             Duration bound, String detail, String dump) {
    /** The failure every seed scenario detects: a wait that never ends. */
    public static final String HANGS = "hangs";

    /** A run whose failure, if any, is a hang. */
    public ScenarioResult(String id, String title, boolean legacy, boolean hung, long nanos, Duration bound,
                          String detail, String dump) {
        this(id, title, legacy, hung, HANGS, nanos, bound, detail, dump);
    }

    /** Whether the failure detected is a hang (a dump of every event loop comes with it). */
    public boolean hung() {
        return failed && HANGS.equals(failure);
    }

    /** The one-line verdict {@code vblk scenario} prints. */
    public String verdict() {
        return id + " " + title + ": " + outcome() + (detail == null || detail.isEmpty() ? "" : " — " + detail);
    }

    /** "fixed behaviour completes in 3.1 ms" / "legacy behaviour hangs (detected after 2.0 s)". */
    public String outcome() {
        String mode = legacy ? "legacy" : "fixed";
        return failed
                ? String.format("%s behaviour %s (detected after %.1f s)", mode, failure, nanos / 1e9)
                : String.format("%s behaviour completes in %.1f ms", mode, nanos / 1e6);
    }

    /** The outcome without the mode, for a table cell: "completes in 3.1 ms" / "hangs after 2.0 s". */
    public String brief() {
        return failed
                ? String.format("%s after %.1f s", failure, nanos / 1e9)
                : String.format("completes in %.1f ms", nanos / 1e6);
    }

    /** What a run should do: a fixed run completes, a legacy run fails as the bug did. */
    public boolean asExpected() {
        return failed == legacy;
    }
}
