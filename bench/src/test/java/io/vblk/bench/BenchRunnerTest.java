package io.vblk.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.IoPattern;

import java.util.EnumMap;
import java.util.List;

import org.junit.jupiter.api.Test;

/** The runner's accounting, on a null backend whose every request takes a known time. Speed is never asserted. */
class BenchRunnerTest {
    /**
     * Long against what a busy machine adds: other builds and tests share its two CPUs, and a vCPU or
     * IOThread that waits for one can add milliseconds to a request.
     */
    private static final long LATENCY_NS = 50_000_000L;

    private static BenchConfig fixedLatency(int qd) {
        return new BenchConfig(1, 1, qd, 4096, IoPattern.parse("randread"), BenchConfig.Backend.NULL, null, null,
                64L << 20, 1_500_000_000L, 300_000_000L, true, false, 32768, false, 1, LATENCY_NS, false,
                io.vblk.block.FileOptions.defaults());
    }

    @Test
    void aFixedLatencyNullBackendReportsThatLatencyWithinTenPercent() {
        int qd = 16;
        BenchResult r = new BenchRunner(fixedLatency(qd), BenchRunner.Progress.NONE).run();
        assertTrue(r.ok(), r.firstProblem());
        assertTrue(r.requests() > 100, "requests " + r.requests());
        // a request can never be faster than its backend
        assertTrue(r.minNs() >= LATENCY_NS, "min " + r.minNs());
        assertEquals(LATENCY_NS, r.p50Ns(), LATENCY_NS * 0.10, "p50");
        assertEquals(LATENCY_NS, r.meanNs(), LATENCY_NS * 0.10, "mean");
        // Little's law ties the counted requests to the recorded latencies: qd = throughput x latency
        double inFlight = r.iops() * r.meanNs() / 1e9;
        assertEquals(qd, inFlight, qd * 0.10, "requests in flight by Little's law");
        assertEquals(r.requests() * 4096L, r.bytes());
        assertEquals(r.windowNs(), r.cpu().wallNs(), 50_000_000L, "CPU window = measurement window");
        assertTrue(r.cpu().get(CpuAccounting.Kind.VCPU) > 0, "the vCPU ran");
        assertTrue(r.cpu().get(CpuAccounting.Kind.IOTHREAD) > 0, "the IOThread ran");
        assertTrue(r.interrupts() > 0, "completions arrived by MSI-X");
    }

    @Test
    void theReportIsOneSelfContainedPageWithAChartAndTheTable() {
        Sweep s = Sweep.parse(List.of("iothreads=1,2", "qd=1,8"));
        List<BenchConfig> grid = s.expand(BenchConfig.defaults());
        EnumMap<CpuAccounting.Kind, Long> cpu = new EnumMap<>(CpuAccounting.Kind.class);
        cpu.put(CpuAccounting.Kind.VCPU, 1_000_000_000L);
        cpu.put(CpuAccounting.Kind.IOTHREAD, 900_000_000L);
        List<BenchResult> rs = new java.util.ArrayList<>();
        long n = 100_000;
        for (BenchConfig c : grid) {
            rs.add(new BenchResult(c, n, 1_000_000_000L, n * 4096, 10_000, 9_000, 40_000, 80_000, 5_000, 100_000,
                    new CpuAccounting.Usage(cpu, 2_000_000_000L, 1_000_000_000L), 10, 20, 20, 0, 1000, 0, 0, null, 0,
                    0, 0, 0, "2026-01-01T00:00:00Z"));
            n *= 2;
        }
        String html = HtmlReport.render(s, BenchConfig.defaults(), rs, "vblk bench --sweep iothreads=1,2 qd=1,8",
                "2 CPUs");
        assertTrue(html.startsWith("<!DOCTYPE html>"));
        assertEquals(2, html.split("<svg ", -1).length - 1, "two charts: IOPS and p99");
        assertTrue(html.contains("<polyline"), "lines");
        assertTrue(html.contains(">iothreads=1<") && html.contains(">iothreads=2<"), "one line per configuration");
        assertEquals(4 + 1, html.split("<tr>", -1).length - 1, "a header and a row per run");
        assertFalse(html.contains("<script"), "no script");
        assertFalse(html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "").contains("http"),
                "nothing fetched from elsewhere");
        String json = BenchReport.json(rs);
        assertTrue(json.startsWith("[\n{"), json);
        assertTrue(json.contains("\"iops\": 100000"), json);
        assertNull(rs.get(0).firstProblem());
    }

    @Test
    void aLongSeriesNameWidensTheChartInsteadOfBeingCut() {
        String longName = "iothreads=2 queues=2 qd=128 backend=file aio=io_uring cache-direct=on";
        int w = HtmlReport.svgWidth(java.util.List.of("qd=1", longName));
        assertTrue(w >= 7 * longName.length(), "legend of " + longName.length() + " characters in " + w + " px");
        assertEquals(HtmlReport.svgWidth(java.util.List.of("qd=1")), HtmlReport.svgWidth(java.util.List.of("qd=8")),
                "short names keep the default width");
    }
}
