package io.vblk.guest;

/** Where a vCPU's request latencies go (single writer; implementations must not allocate per record). */
@FunctionalInterface
public interface LatencySink {
    LatencySink NONE = nanos -> { };

    void record(long nanos);
}
