package io.vblk.guest.scenario;

import java.time.Duration;

/**
 * The outcome of one run of a seed scenario: whether it hung (and after how
 * long the hang was detected) or completed (and how long it took), with the
 * event-loop dump of a hang.
 */
public record ScenarioResult(String id, String title, boolean legacy, boolean hung, long nanos, Duration bound,
                             String detail, String dump) {
    /** The one-line verdict {@code vblk scenario} prints. */
    public String verdict() {
        return id + " " + title + ": " + outcome() + (detail == null || detail.isEmpty() ? "" : " — " + detail);
    }

    /** "fixed behaviour completes in 3.1 ms" / "legacy behaviour hangs (detected after 2.0 s)". */
    public String outcome() {
        String mode = legacy ? "legacy" : "fixed";
        return hung
                ? String.format("%s behaviour hangs (detected after %.1f s)", mode, nanos / 1e9)
                : String.format("%s behaviour completes in %.1f ms", mode, nanos / 1e6);
    }

    /** What a run should do: a fixed run completes, a legacy run hangs. */
    public boolean asExpected() {
        return hung == legacy;
    }
}
