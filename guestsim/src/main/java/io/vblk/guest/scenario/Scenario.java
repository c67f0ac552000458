package io.vblk.guest.scenario;

import java.time.Duration;

/**
 * A historic QEMU bug (a seed, or one of historic-bugs.md's 005-016), staged
 * deterministically on the machine: run with the bug's
 * {@link io.vblk.aio.LegacyBehavior} on, the watchdog (or the guest, or an
 * invariant check) detects the failure; with it off, the same steps complete.
 */
public interface Scenario {
    /** "seed-004", "seed-001-dataplane", ... */
    String id();

    /** A short name of the mechanism, e.g. "notify-accept-steal". */
    String title();

    /** The upstream QEMU commit of the fix, abbreviated ("b37548fcd1"); "" when the seed text names none. */
    default String upstreamCommit() {
        return "";
    }

    /** One line: what the bug was (for {@code vblk scenario --list}). */
    default String summary() {
        return title();
    }

    /**
     * The story ({@code vblk scenario ID --explain}): which threads, which
     * steps, where the fix intervenes, and what the legacy switch reverts.
     */
    default String explain() {
        return summary();
    }

    /** Runs the scenario once; {@code hangBound} bounds every wait that may hang. */
    ScenarioResult run(boolean legacy, Duration hangBound) throws Exception;
}
