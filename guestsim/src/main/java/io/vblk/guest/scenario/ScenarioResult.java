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
        String mode = legacy ? "legacy" : "fixed";
        String what = hung
                ? String.format("%s behaviour hangs (detected after %.1f s)", mode, nanos / 1e9)
                : String.format("%s behaviour completes in %.1f ms", mode, nanos / 1e6);
        return id + " " + title + ": " + what + (detail == null || detail.isEmpty() ? "" : " — " + detail);
    }
}
