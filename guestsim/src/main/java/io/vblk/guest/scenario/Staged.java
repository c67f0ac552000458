package io.vblk.guest.scenario;

import io.vblk.aio.HangDetectedException;
import io.vblk.aio.Watchdog;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * The step of a scenario that may hang, timed and bounded by a watchdog:
 * either it finished (result, nanoseconds) or the watchdog detected the hang
 * (nanoseconds until detection, dump). Shared by the seed scenarios.
 */
record Staged<T>(boolean hung, T result, long nanos, String dump, String what) {
    static <T> Staged<T> await(Watchdog w, String what, CompletableFuture<T> f) {
        long t0 = System.nanoTime();
        try {
            T r = w.await(what, f);
            return new Staged<>(false, r, System.nanoTime() - t0, null, what);
        } catch (HangDetectedException e) {
            return new Staged<>(true, null, System.nanoTime() - t0, e.dump(), what);
        }
    }

    /** Runs {@code step}, which bounds its own waits and throws {@link HangDetectedException} on a hang. */
    static Staged<Void> run(String what, Runnable step) {
        long t0 = System.nanoTime();
        try {
            step.run();
            return new Staged<>(false, null, System.nanoTime() - t0, null, what);
        } catch (HangDetectedException e) {
            return new Staged<>(true, null, System.nanoTime() - t0, e.dump(), what);
        }
    }

    ScenarioResult result(Scenario s, boolean legacy, Duration bound, String detail) {
        return new ScenarioResult(s.id(), s.title(), legacy, hung, nanos, bound, detail, dump);
    }
}
