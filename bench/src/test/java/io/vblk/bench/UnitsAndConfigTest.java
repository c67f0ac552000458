package io.vblk.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.Test;

class UnitsAndConfigTest {

    @Test
    void sizesAndDurationsParseTheFioWay() {
        assertEquals(4096, Units.parseBytes("bs", "4k"));
        assertEquals(65536, Units.parseBytes("bs", "64K"));
        assertEquals(1 << 20, Units.parseBytes("bs", "1m"));
        assertEquals(1L << 30, Units.parseBytes("size", "1GiB"));
        assertEquals(512, Units.parseBytes("bs", "512"));
        assertEquals(10_000_000_000L, Units.parseDurationNs("runtime", "10s"));
        assertEquals(500_000_000L, Units.parseDurationNs("runtime", "500ms"));
        assertEquals(1_500_000_000L, Units.parseDurationNs("runtime", "1.5"));
        assertEquals(120_000_000_000L, Units.parseDurationNs("runtime", "2m"));
        assertEquals(100_000L, Units.parseDurationNs("null-latency", "100us"));
        assertEquals("4k", Units.bytes(4096));
        assertEquals("1g", Units.bytes(1L << 30));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Units.parseBytes("bs", "4x"));
        assertEquals("--bs takes a size such as 4k, 64k, 1m or 512, not '4x'", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Units.parseDurationNs("runtime", "-1s"));
        assertThrows(IllegalArgumentException.class, () -> Units.parseOnOff("dataplane", "yes"));
    }

    @Test
    void badConfigurationsAreNamedInOneLine() {
        BenchConfig d = BenchConfig.defaults();
        assertNull(d.validate());
        assertTrue(d.with("qd", "0").validate().startsWith("--qd must be 1.."));
        assertTrue(d.with("bs", "1000").validate().startsWith("--bs must be a multiple of 512"));
        assertTrue(d.with("iothreads", "0").validate().contains("--dataplane on needs at least one IOThread"));
        assertNull(d.with("iothreads", "0").with("dataplane", "off").validate());
        BenchConfig verifyNull = new BenchConfig(1, 1, 1, 4096, d.pattern(), BenchConfig.Backend.NULL, null, null,
                1L << 30, 1, 0, true, false, 0, true, 1, 0, false, io.vblk.block.FileOptions.defaults());
        assertTrue(verifyNull.validate().contains("null backend discards writes"), verifyNull.validate());
        for (String p : List.of(d.with("qd", "0").validate(), verifyNull.validate())) {
            assertTrue(!p.contains("\n"), p);
        }
    }

    @Test
    void queueSizeHoldsThreeDescriptorsPerRequest() {
        BenchConfig d = BenchConfig.defaults();
        assertEquals(256, d.with("qd", "1").queueSize());
        assertEquals(256, d.with("qd", "64").queueSize());
        assertEquals(512, d.with("qd", "128").queueSize());
        assertEquals(16384, d.with("qd", "4096").queueSize());
    }

    @Test
    void sweepsExpandToTheirGridAndReportInHtml() {
        Sweep s = Sweep.parse(List.of("iothreads=1,2", "qd=1,8,32"));
        List<BenchConfig> grid = s.expand(BenchConfig.defaults());
        assertEquals(6, grid.size());
        assertEquals("qd", s.xKey());
        assertEquals(List.of("iothreads"), s.seriesKeys());
        assertEquals("iothreads=2 qd=8", Sweep.label(grid.get(4), List.of("iothreads", "qd")));
        assertThrows(IllegalArgumentException.class, () -> Sweep.parse(List.of("q=1,2")));
        assertThrows(IllegalArgumentException.class, () -> Sweep.parse(List.of("qd")));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Sweep.parse(List.of("qd=0,1")).expand(BenchConfig.defaults()));
        assertTrue(e.getMessage().startsWith("sweep point qd=0: --qd must be"), e.getMessage());
    }
}
