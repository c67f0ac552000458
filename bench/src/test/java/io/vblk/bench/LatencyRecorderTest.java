package io.vblk.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.util.List;

import org.HdrHistogram.Histogram;
import org.junit.jupiter.api.Test;

class LatencyRecorderTest {

    @Test
    void recordsOnlyWhileTheGateIsOpenAndMergesPerVcpuHistograms() {
        LatencyRecorder.Gate gate = new LatencyRecorder.Gate();
        LatencyRecorder a = new LatencyRecorder(gate);
        LatencyRecorder b = new LatencyRecorder(gate);
        a.record(5_000);                       // ramp: not counted
        gate.open();
        for (int i = 1; i <= 1000; i++) {
            a.record(i * 1_000L);              // 1..1000 µs
        }
        for (int i = 0; i < 1000; i++) {
            b.record(2_000_000);               // 2 ms
        }
        gate.close();
        b.record(9_000_000);                   // after the window: not counted
        assertEquals(1000, a.count());
        assertEquals(1000, b.count());
        Histogram all = LatencyRecorder.merge(List.of(a, b));
        assertEquals(2000, all.getTotalCount());
        assertEquals(500_000, all.getValueAtPercentile(25), 500_000 * 0.001);
        assertEquals(1_000_000, all.getValueAtPercentile(50), 1_000_000 * 0.001);
        assertEquals(2_000_000, all.getValueAtPercentile(99), 2_000_000 * 0.001);
        assertEquals((500_500.0 + 2_000_000.0) / 2, all.getMean(), 2_000);
        assertEquals(1_000, all.getMinValue(), 1);
    }

    @Test
    void clampsWhatItCannotHoldInsteadOfFailing() {
        LatencyRecorder.Gate gate = new LatencyRecorder.Gate();
        gate.open();
        LatencyRecorder r = new LatencyRecorder(gate);
        r.record(0);
        r.record(-5);
        r.record(LatencyRecorder.HIGHEST_NS * 10);
        assertEquals(3, r.count());
        assertEquals(1, r.clamped());
        assertTrue(r.histogram().getMaxValue() >= LatencyRecorder.HIGHEST_NS * 0.999);
    }

    @Test
    void recordingAllocatesNothingPerRequest() {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        LatencyRecorder.Gate gate = new LatencyRecorder.Gate();
        gate.open();
        LatencyRecorder r = new LatencyRecorder(gate);
        for (int i = 0; i < 200_000; i++) {
            r.record(1_000 + (i % 50_000) * 37L);
        }
        long tid = Thread.currentThread().getId();
        long before = mx.getThreadAllocatedBytes(tid);
        for (int i = 0; i < 1_000_000; i++) {
            r.record(1_000 + (i % 50_000) * 37L);
        }
        long allocated = mx.getThreadAllocatedBytes(tid) - before;
        assertTrue(allocated < 64 * 1024, "1,000,000 records allocated " + allocated + " bytes");
        assertEquals(1_200_000, r.count());
    }
}
