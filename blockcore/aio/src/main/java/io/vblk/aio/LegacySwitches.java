package io.vblk.aio;

import java.util.EnumSet;
import java.util.Set;

/**
 * The set of {@link LegacyBehavior}s switched on for one machine (its main
 * loop and IOThreads share one instance). Empty by default; reads are a
 * single volatile load so the hot path may consult it.
 */
public final class LegacySwitches {
    /** One bit per switch, by ordinal; the class refuses to load if the enum outgrows a long. */
    private volatile long mask;

    static {
        if (LegacyBehavior.values().length > Long.SIZE) {
            throw new ExceptionInInitializerError("LegacySwitches holds at most 64 switches; make it an EnumSet");
        }
    }

    public LegacySwitches() {
    }

    public LegacySwitches(Set<LegacyBehavior> on) {
        on.forEach(this::enable);
    }

    public boolean isOn(LegacyBehavior b) {
        return (mask & (1L << b.ordinal())) != 0;
    }

    public synchronized void enable(LegacyBehavior b) {
        mask |= 1L << b.ordinal();
    }

    public synchronized void disable(LegacyBehavior b) {
        mask &= ~(1L << b.ordinal());
    }

    public synchronized void set(LegacyBehavior b, boolean on) {
        if (on) {
            enable(b);
        } else {
            disable(b);
        }
    }

    public Set<LegacyBehavior> enabled() {
        EnumSet<LegacyBehavior> s = EnumSet.noneOf(LegacyBehavior.class);
        for (LegacyBehavior b : LegacyBehavior.values()) {
            if (isOn(b)) {
                s.add(b);
            }
        }
        return s;
    }

    @Override
    public String toString() {
        return enabled().toString();
    }
}
