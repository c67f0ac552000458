package io.vblk.bench;

import java.util.Locale;

/**
 * What one run measured, over its measurement window (after the ramp):
 * completed requests only. Latencies are in nanoseconds, CPU in nanoseconds
 * per thread kind.
 */
public record BenchResult(BenchConfig config, long requests, long windowNs, long bytes,
                          double meanNs, long p50Ns, long p99Ns, long p999Ns, long minNs, long maxNs,
                          CpuAccounting.Usage cpu, long kicks, long interrupts, long irqfdSignals,
                          long iothreadWakeups, long iothreadPolls, long errors, long mismatches, String firstProblem,
                          long stopStarts, long stopStartP50Ns, long stopStartP99Ns, long clampedLatencies,
                          String startedAt) {

    public double iops() {
        return windowNs == 0 ? 0 : requests * 1e9 / windowNs;
    }

    public double bytesPerSecond() {
        return windowNs == 0 ? 0 : bytes * 1e9 / windowNs;
    }

    /** CPU microseconds per request over the I/O threads (vCPU, iothread, main loop, workers). */
    public double cpuUsPerRequest() {
        return requests == 0 ? Double.NaN : cpu.ioThreadsTotal() / 1e3 / requests;
    }

    public double processCpuUsPerRequest() {
        return requests == 0 || cpu.processNs() < 0 ? Double.NaN : cpu.processNs() / 1e3 / requests;
    }

    public double perRequest(long n) {
        return requests == 0 ? Double.NaN : (double) n / requests;
    }

    public boolean ok() {
        return errors == 0 && mismatches == 0 && firstProblem == null;
    }

    /** MB/s in decimal megabytes, as fio prints them. */
    public static String rate(double bytesPerSecond) {
        if (bytesPerSecond >= 1e9) {
            return String.format(Locale.ROOT, "%.2f GB/s", bytesPerSecond / 1e9);
        }
        return String.format(Locale.ROOT, "%.1f MB/s", bytesPerSecond / 1e6);
    }

    /** A latency in microseconds with sensible precision. */
    public static String us(double ns) {
        double us = ns / 1e3;
        if (us >= 1000) {
            return String.format(Locale.ROOT, "%.0f µs", us);
        }
        if (us >= 100) {
            return String.format(Locale.ROOT, "%.1f µs", us);
        }
        return String.format(Locale.ROOT, "%.2f µs", us);
    }
}
