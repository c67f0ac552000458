package io.vblk.bench;

import io.vblk.guest.LatencySink;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

import org.HdrHistogram.Histogram;

/**
 * One vCPU's completions: an HdrHistogram of latencies in nanoseconds and a
 * count, written only by that vCPU and only while the shared {@link Gate} is
 * open (after the ramp, before the end of the window). Nothing is allocated
 * per record: the histogram is sized once for latencies up to
 * {@link #HIGHEST_NS} with 3 significant digits and never resizes; a larger
 * value is clamped (and counted in {@link #clamped()}).
 *
 * <p>The count is published with opaque stores so a progress reader sees it
 * without a fence on the vCPU's path; the histogram is read only after the
 * vCPU has finished (its program's future completed: a happens-before edge).
 */
public final class LatencyRecorder implements LatencySink {
    /** Latencies above one minute are recorded as one minute. */
    public static final long HIGHEST_NS = 60_000_000_000L;
    public static final int SIGNIFICANT_DIGITS = 3;

    private static final VarHandle COUNT;

    static {
        try {
            COUNT = MethodHandles.lookup().findVarHandle(LatencyRecorder.class, "count", long.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Opens and closes the measurement window for every recorder of a run at once. */
    public static final class Gate {
        private volatile boolean open;

        public void open() {
            open = true;
        }

        public void close() {
            open = false;
        }

        public boolean isOpen() {
            return open;
        }
    }

    private final Gate gate;
    private final Histogram histogram = newHistogram();
    @SuppressWarnings("unused") // accessed through COUNT
    private long count;
    private long clamped;

    public LatencyRecorder(Gate gate) {
        this.gate = gate;
    }

    /** An empty histogram of the recorders' shape (to merge into). */
    public static Histogram newHistogram() {
        Histogram h = new Histogram(1, HIGHEST_NS, SIGNIFICANT_DIGITS);
        h.setAutoResize(false);
        return h;
    }

    @Override
    public void record(long nanos) {
        if (!gate.open) {
            return;
        }
        long v = nanos;
        if (v < 1) {
            v = 1;
        } else if (v > HIGHEST_NS) {
            v = HIGHEST_NS;
            clamped++;
        }
        histogram.recordValue(v);
        COUNT.setOpaque(this, (long) COUNT.getOpaque(this) + 1);
    }

    /** Completions recorded so far (racy while the vCPU runs; exact after it finished). */
    public long count() {
        return (long) COUNT.getOpaque(this);
    }

    public long clamped() {
        return clamped;
    }

    /** The vCPU's histogram; read it only after the vCPU stopped recording. */
    public Histogram histogram() {
        return histogram;
    }

    /** The merge of every recorder's histogram (one per vCPU), made at the end of a run. */
    public static Histogram merge(Iterable<LatencyRecorder> recorders) {
        Histogram all = newHistogram();
        for (LatencyRecorder r : recorders) {
            all.add(r.histogram);
        }
        return all;
    }
}
