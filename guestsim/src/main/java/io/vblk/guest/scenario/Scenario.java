package io.vblk.guest.scenario;

import java.time.Duration;

/**
 * A seed's hang, staged deterministically on the machine: run with the
 * seed's {@link io.vblk.aio.LegacyBehavior} on, the watchdog (or the guest)
 * detects the hang; with it off, the same steps complete.
 */
public interface Scenario {
    /** "seed-004", "seed-001-dataplane", ... */
    String id();

    /** A short name of the mechanism, e.g. "notify-accept-steal". */
    String title();

    /** Runs the scenario once; {@code hangBound} bounds every wait that may hang. */
    ScenarioResult run(boolean legacy, Duration hangBound) throws Exception;
}
