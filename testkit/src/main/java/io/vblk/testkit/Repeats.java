package io.vblk.testkit;

/**
 * How many times a test repeats its own loop. A storm test (10,000 dataplane
 * cycles, 1,000 resets) is a small soak in itself; {@code ./vblk soak} repeats
 * every concurrency test many times over, so it divides those inner counts by
 * {@code -Dvblk.soak.divisor} (bench/soak.sh sets it) and spends the time on
 * more starved runs of every test instead. A quiet {@code mvn verify} runs the
 * full counts.
 */
public final class Repeats {
    /** The system property bench/soak.sh sets; 1 (the full count) when unset. */
    public static final String DIVISOR = "vblk.soak.divisor";

    private Repeats() {
    }

    /** {@code count} divided by the soak's divisor, never below 1. */
    public static int of(int count) {
        int divisor = Integer.getInteger(DIVISOR, 1);
        if (divisor < 1) {
            throw new IllegalArgumentException(DIVISOR + " must be >= 1, got " + divisor);
        }
        return Math.max(1, count / divisor);
    }
}
