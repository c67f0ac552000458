package io.vblk.testkit;

import java.time.Duration;
import java.util.function.BooleanSupplier;

/**
 * Waits for something another thread makes true, the way a driver polls a
 * register: spinning with {@link Thread#onSpinWait()} under a deadline, never
 * sleeping. A missed deadline fails with what was awaited.
 */
public final class Spin {
    /** The deadline of {@link #until(String, BooleanSupplier)}. */
    public static final Duration DEADLINE = Duration.ofSeconds(10);

    private Spin() {
    }

    public static void until(String what, BooleanSupplier cond) {
        until(what, DEADLINE, cond);
    }

    public static void until(String what, Duration deadline, BooleanSupplier cond) {
        long end = System.nanoTime() + deadline.toNanos();
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() - end > 0) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.onSpinWait();
            Thread.yield();
        }
    }
}
