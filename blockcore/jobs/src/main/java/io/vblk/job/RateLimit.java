package io.vblk.job;

/**
 * A job's speed limit: QEMU's {@code RateLimit} (include/qemu/ratelimit.h).
 * Time is cut into 100 ms slices, each allowing {@code speed / 10} bytes;
 * once a slice's quota is used up the job sleeps until the slice ends. The
 * clock is passed in so the arithmetic is testable without waiting.
 */
public final class RateLimit {
    static final long SLICE_NS = 100_000_000L;

    private long bytesPerSecond;
    private long bytesPerSlice;
    private long sliceStart;
    private long sliceEnd;
    private long dispatched;

    /** Sets the limit in bytes per second (0: unlimited). */
    public synchronized void setSpeed(long bytesPerSecond) {
        this.bytesPerSecond = bytesPerSecond;
        bytesPerSlice = bytesPerSecond == 0 ? 0 : Math.max(1, bytesPerSecond / (1_000_000_000L / SLICE_NS));
    }

    public synchronized long speed() {
        return bytesPerSecond;
    }

    /**
     * Accounts {@code bytes} just transferred at time {@code now}; returns how
     * many nanoseconds to sleep before the next transfer (0: go on).
     */
    public synchronized long delayNs(long now, long bytes) {
        if (bytesPerSlice == 0) {
            return 0;
        }
        if (sliceEnd - now <= 0) {
            sliceStart = now;
            sliceEnd = now + SLICE_NS;
            dispatched = 0;
        }
        dispatched += bytes;
        if (dispatched < bytesPerSlice) {
            return 0;
        }
        // over quota: wait for as many slices as the excess needs
        long slices = dispatched / bytesPerSlice;
        long until = sliceStart + slices * SLICE_NS;
        sliceStart = until;
        sliceEnd = until + SLICE_NS;
        dispatched -= slices * bytesPerSlice;
        return Math.max(0, until - now);
    }
}
