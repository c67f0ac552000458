package io.vblk.virtio;

import java.util.function.BooleanSupplier;

/**
 * Waits for something another thread makes true, the way a driver polls a
 * register: spinning with {@link Thread#onSpinWait()} under a deadline, never
 * sleeping. A missed deadline fails with what was awaited.
 */
final class Spin {
    static final long DEADLINE_NS = 10_000_000_000L;

    private Spin() {
    }

    static void until(String what, BooleanSupplier cond) {
        long end = System.nanoTime() + DEADLINE_NS;
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() - end > 0) {
                throw new AssertionError("timed out waiting for " + what);
            }
            Thread.onSpinWait();
            Thread.yield();
        }
    }
}
