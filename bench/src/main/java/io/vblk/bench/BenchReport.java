package io.vblk.bench;

import java.io.PrintWriter;
import java.util.List;
import java.util.Locale;

/** The final table of a run, and the JSON form of one or many runs. */
public final class BenchReport {
    private BenchReport() {
    }

    /** The human table {@code vblk bench} prints at the end of a run. */
    public static void table(BenchResult r, PrintWriter out) {
        BenchConfig c = r.config();
        CpuAccounting.Usage u = r.cpu();
        out.println("vblk bench: " + c.describe());
        row(out, "window", String.format(Locale.ROOT, "%.2f s after a %s ramp; %,d requests completed",
                r.windowNs() / 1e9, Units.duration(c.rampNs()), r.requests()));
        row(out, "IOPS", String.format(Locale.ROOT, "%,.0f", r.iops()));
        row(out, "bandwidth", String.format(Locale.ROOT, "%s (%.1f MiB/s)", BenchResult.rate(r.bytesPerSecond()),
                r.bytesPerSecond() / (1 << 20)));
        row(out, "latency", String.format(Locale.ROOT, "mean %s   p50 %s   p99 %s   p99.9 %s   max %s",
                BenchResult.us(r.meanNs()), BenchResult.us(r.p50Ns()), BenchResult.us(r.p99Ns()),
                BenchResult.us(r.p999Ns()), BenchResult.us(r.maxNs())));
        row(out, "CPU seconds", String.format(Locale.ROOT,
                "vCPU %.2f   iothread %.2f   main loop %.2f   workers %.2f   other %.2f   (process %s)",
                u.get(CpuAccounting.Kind.VCPU) / 1e9, u.get(CpuAccounting.Kind.IOTHREAD) / 1e9,
                u.get(CpuAccounting.Kind.MAIN_LOOP) / 1e9, u.get(CpuAccounting.Kind.WORKER) / 1e9,
                u.get(CpuAccounting.Kind.OTHER) / 1e9,
                u.processNs() < 0 ? "n/a" : String.format(Locale.ROOT, "%.2f", u.processNs() / 1e9)));
        row(out, "CPU per request", String.format(Locale.ROOT,
                "%.2f µs (vCPU %.2f + iothread %.2f + main loop %.2f + workers %.2f)   process %.2f µs",
                r.cpuUsPerRequest(), perReqUs(r, u.get(CpuAccounting.Kind.VCPU)),
                perReqUs(r, u.get(CpuAccounting.Kind.IOTHREAD)), perReqUs(r, u.get(CpuAccounting.Kind.MAIN_LOOP)),
                perReqUs(r, u.get(CpuAccounting.Kind.WORKER)), r.processCpuUsPerRequest()));
        row(out, "per request", String.format(Locale.ROOT,
                "kicks %.4f   interrupts %.4f (device signalled %.4f)   iothread eventfd wake-ups %.4f   polls %.3f",
                r.perRequest(r.kicks()), r.perRequest(r.interrupts()), r.perRequest(r.irqfdSignals()),
                r.perRequest(r.iothreadWakeups()), r.perRequest(r.iothreadPolls())));
        if (r.stopStarts() > 0) {
            row(out, "stop+start", String.format(Locale.ROOT, "%,d cycles   median %s   p99 %s", r.stopStarts(),
                    BenchResult.us(r.stopStartP50Ns()), BenchResult.us(r.stopStartP99Ns())));
        }
        if (c.verify()) {
            row(out, "verify", r.mismatches() == 0 && r.errors() == 0 ? "every read matched (0 mismatches)"
                    : r.mismatches() + " mismatches, " + r.errors() + " errors: " + r.firstProblem());
        } else if (!r.ok()) {
            row(out, "errors", r.errors() + " errors: " + r.firstProblem());
        }
        if (r.clampedLatencies() > 0) {
            row(out, "note", r.clampedLatencies() + " latencies above 60 s were recorded as 60 s");
        }
        out.flush();
    }

    private static double perReqUs(BenchResult r, long ns) {
        return r.requests() == 0 ? Double.NaN : ns / 1e3 / r.requests();
    }

    private static void row(PrintWriter out, String k, String v) {
        out.printf("  %-16s %s%n", k, v);
    }

    /** One result as a JSON object. */
    public static String json(BenchResult r) {
        BenchConfig c = r.config();
        CpuAccounting.Usage u = r.cpu();
        Json j = new Json();
        j.begin();
        j.field("started_at", r.startedAt());
        j.key("config").begin();
        j.field("rw", c.pattern().toString());
        j.field("bs", c.blockSize());
        j.field("qd", c.queueDepth());
        j.field("queues", c.queues());
        j.field("iothreads", c.dataplane() ? c.iothreads() : 0);
        j.field("dataplane", c.dataplane());
        j.field("backend", c.backend().toString());
        j.field("image", c.image() == null ? null : c.image().toString());
        j.field("size", c.image() == null ? c.sizeBytes() : -1);
        j.field("poll_max_ns", c.pollMaxNs());
        j.field("guest_poll", c.guestPoll());
        j.field("verify", c.verify());
        j.field("null_latency_ns", c.nullLatencyNs());
        j.field("runtime_ns", c.runtimeNs());
        j.field("ramp_ns", c.rampNs());
        j.field("stop_start", c.stopStart());
        j.field("aio", c.fileOptions().toQemu().get("aio"));
        j.field("cache_direct", c.fileOptions().direct());
        j.end();
        j.field("requests", r.requests());
        j.field("window_ns", r.windowNs());
        j.field("iops", r.iops());
        j.field("bytes_per_second", r.bytesPerSecond());
        j.key("latency_ns").begin();
        j.field("mean", r.meanNs());
        j.field("p50", r.p50Ns());
        j.field("p99", r.p99Ns());
        j.field("p99_9", r.p999Ns());
        j.field("min", r.minNs());
        j.field("max", r.maxNs());
        j.end();
        j.key("cpu_seconds").begin();
        for (CpuAccounting.Kind k : CpuAccounting.Kind.values()) {
            j.field(k.name().toLowerCase(Locale.ROOT), u.get(k) / 1e9);
        }
        j.field("process", u.processNs() < 0 ? Double.NaN : u.processNs() / 1e9);
        j.end();
        j.field("cpu_us_per_request", r.cpuUsPerRequest());
        j.field("process_cpu_us_per_request", r.processCpuUsPerRequest());
        j.field("kicks_per_request", r.perRequest(r.kicks()));
        j.field("interrupts_per_request", r.perRequest(r.interrupts()));
        j.field("device_interrupts_per_request", r.perRequest(r.irqfdSignals()));
        j.field("iothread_eventfd_wakeups_per_request", r.perRequest(r.iothreadWakeups()));
        j.field("iothread_polls_per_request", r.perRequest(r.iothreadPolls()));
        j.field("errors", r.errors());
        j.field("mismatches", r.mismatches());
        j.field("first_problem", r.firstProblem());
        if (r.stopStarts() > 0) {
            j.key("stop_start_ns").begin();
            j.field("cycles", r.stopStarts());
            j.field("p50", r.stopStartP50Ns());
            j.field("p99", r.stopStartP99Ns());
            j.end();
        }
        j.end();
        return j.toString();
    }

    /** One result as an object; several as an array. */
    public static String json(List<BenchResult> rs) {
        if (rs.size() == 1) {
            return json(rs.get(0)) + "\n";
        }
        StringBuilder sb = new StringBuilder("[\n");
        for (int i = 0; i < rs.size(); i++) {
            sb.append(json(rs.get(i)));
            sb.append(i + 1 < rs.size() ? ",\n" : "\n");
        }
        return sb.append("]\n").toString();
    }

    /** A small JSON writer: objects, strings, numbers, booleans and null. */
    static final class Json {
        private final StringBuilder sb = new StringBuilder();
        private boolean first = true;

        Json begin() {
            sb.append('{');
            first = true;
            return this;
        }

        Json end() {
            sb.append('}');
            first = false;
            return this;
        }

        Json key(String k) {
            if (!first) {
                sb.append(", ");
            }
            first = false;
            string(k);
            sb.append(": ");
            return this;
        }

        void field(String k, String v) {
            key(k);
            if (v == null) {
                sb.append("null");
            } else {
                string(v);
            }
        }

        void field(String k, long v) {
            key(k);
            sb.append(v);
        }

        void field(String k, double v) {
            key(k);
            if (Double.isNaN(v) || Double.isInfinite(v)) {
                sb.append("null");
            } else {
                sb.append(v == Math.rint(v) && Math.abs(v) < 1e15 ? Long.toString((long) v) : Double.toString(v));
            }
        }

        void field(String k, boolean v) {
            key(k);
            sb.append(v);
        }

        private void string(String s) {
            sb.append('"');
            for (int i = 0; i < s.length(); i++) {
                char ch = s.charAt(i);
                switch (ch) {
                    case '"':
                        sb.append("\\\"");
                        break;
                    case '\\':
                        sb.append("\\\\");
                        break;
                    case '\n':
                        sb.append("\\n");
                        break;
                    case '\r':
                        sb.append("\\r");
                        break;
                    case '\t':
                        sb.append("\\t");
                        break;
                    default:
                        if (ch < 0x20) {
                            sb.append(String.format(Locale.ROOT, "\\u%04x", (int) ch));
                        } else {
                            sb.append(ch);
                        }
                }
            }
            sb.append('"');
        }

        @Override
        public String toString() {
            return sb.toString();
        }
    }
}
