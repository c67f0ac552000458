package io.vblk.bench;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * {@code bench-report.html}: a self-contained page (inline CSS and SVG, no
 * script, no external resource) with two charts — IOPS and p99 latency
 * against the sweep's last parameter, one line per combination of the other
 * parameters — and the table of every run.
 */
public final class HtmlReport {
    private static final String[] COLORS = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
            "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    private static final int W = 520;
    private static final int H = 320;
    private static final int ML = 70;
    private static final int MR = 20;
    private static final int MT = 30;
    private static final int MB = 50;

    private HtmlReport() {
    }

    public static String render(Sweep sweep, BenchConfig base, List<BenchResult> results, String commandLine,
                                String machine) {
        String xKey = sweep.xKey();
        List<String> seriesKeys = sweep.seriesKeys();
        List<String> xs = sweep.axes().get(xKey);
        Map<String, BenchResult[]> series = new LinkedHashMap<>();
        for (BenchResult r : results) {
            String label = seriesKeys.isEmpty() ? base.describe() : Sweep.label(r.config(), seriesKeys);
            BenchResult[] row = series.computeIfAbsent(label, k -> new BenchResult[xs.size()]);
            row[xs.indexOf(r.config().value(xKey))] = r;
        }
        StringBuilder sb = new StringBuilder();
        sb.append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
        sb.append("<title>vblk bench report</title>\n<style>\n");
        sb.append("body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em;color:#222}\n");
        sb.append("h1{font-size:1.4em}table{border-collapse:collapse;font-size:.9em;margin-top:1em}\n");
        sb.append("th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}\n");
        sb.append("td.l,th.l{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:1.5em}\n");
        sb.append("svg text{font-family:inherit;font-size:12px}code{background:#f6f6f6;padding:0 .2em}\n");
        sb.append(".bad{color:#b00}\n</style></head><body>\n");
        sb.append("<h1>vblk bench</h1>\n");
        sb.append("<p><code>").append(esc(commandLine)).append("</code></p>\n");
        sb.append("<p>Base configuration: ").append(esc(base.describe())).append("<br>\n");
        sb.append("Machine: ").append(esc(machine)).append("</p>\n");
        sb.append("<div class=\"charts\">\n");
        sb.append(chart("IOPS", xKey, xs, series, r -> r.iops(), "IOPS"));
        sb.append(chart("p99 latency", xKey, xs, series, r -> r.p99Ns() / 1e3, "µs"));
        sb.append("</div>\n");
        sb.append("<table>\n<tr>");
        for (String k : sweep.axes().keySet()) {
            sb.append("<th class=\"l\">").append(esc(k)).append("</th>");
        }
        sb.append("<th>IOPS</th><th>bandwidth</th><th>mean</th><th>p50</th><th>p99</th><th>p99.9</th>"
                + "<th>CPU µs/req</th><th>vCPU s</th><th>iothread s</th><th>main loop s</th><th>workers s</th>"
                + "<th>kicks/req</th><th>irqs/req</th><th class=\"l\">verify</th></tr>\n");
        for (BenchResult r : results) {
            sb.append("<tr>");
            for (String k : sweep.axes().keySet()) {
                sb.append("<td class=\"l\">").append(esc(r.config().value(k))).append("</td>");
            }
            CpuAccounting.Usage u = r.cpu();
            sb.append(td(String.format(Locale.ROOT, "%,.0f", r.iops())));
            sb.append(td(BenchResult.rate(r.bytesPerSecond())));
            sb.append(td(BenchResult.us(r.meanNs()))).append(td(BenchResult.us(r.p50Ns())));
            sb.append(td(BenchResult.us(r.p99Ns()))).append(td(BenchResult.us(r.p999Ns())));
            sb.append(td(String.format(Locale.ROOT, "%.2f", r.cpuUsPerRequest())));
            sb.append(td(String.format(Locale.ROOT, "%.2f", u.get(CpuAccounting.Kind.VCPU) / 1e9)));
            sb.append(td(String.format(Locale.ROOT, "%.2f", u.get(CpuAccounting.Kind.IOTHREAD) / 1e9)));
            sb.append(td(String.format(Locale.ROOT, "%.2f", u.get(CpuAccounting.Kind.MAIN_LOOP) / 1e9)));
            sb.append(td(String.format(Locale.ROOT, "%.2f", u.get(CpuAccounting.Kind.WORKER) / 1e9)));
            sb.append(td(String.format(Locale.ROOT, "%.3f", r.perRequest(r.kicks()))));
            sb.append(td(String.format(Locale.ROOT, "%.3f", r.perRequest(r.interrupts()))));
            String v = !r.config().verify() ? "off" : r.ok() ? "ok" : "FAILED: " + r.firstProblem();
            sb.append("<td class=\"l").append(r.ok() ? "" : " bad").append("\">").append(esc(v)).append("</td>");
            sb.append("</tr>\n");
        }
        sb.append("</table>\n");
        sb.append("<p>Latency is measured in the guest, from submitting a request to reaping its completion, "
                + "in one HdrHistogram per vCPU merged at the end; only requests completed after the ramp count. "
                + "CPU seconds come from ThreadMXBean per thread kind over the measurement window.</p>\n");
        sb.append("</body></html>\n");
        return sb.toString();
    }

    private interface Metric {
        double of(BenchResult r);
    }

    private static String chart(String title, String xKey, List<String> xs, Map<String, BenchResult[]> series,
                                Metric m, String unit) {
        double max = 0;
        for (BenchResult[] row : series.values()) {
            for (BenchResult r : row) {
                if (r != null) {
                    double v = m.of(r);
                    max = Math.max(max, v);
                }
            }
        }
        if (max <= 0) {
            max = 1;
        }
        double top = niceCeil(max * 1.05);
        double bottom = 0;
        int pw = W - ML - MR;
        int ph = H - MT - MB;
        StringBuilder sb = new StringBuilder();
        sb.append("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"").append(svgWidth(series.keySet()))
                .append("\" height=\"")
                .append(H + 20 * series.size()).append("\" role=\"img\" aria-label=\"").append(esc(title))
                .append("\">\n");
        sb.append("<text x=\"").append(W / 2).append("\" y=\"18\" text-anchor=\"middle\" font-weight=\"bold\">")
                .append(esc(title)).append(" (").append(esc(unit)).append(")</text>\n");
        // axes and grid
        sb.append(line(ML, MT, ML, MT + ph, "#333"));
        sb.append(line(ML, MT + ph, ML + pw, MT + ph, "#333"));
        for (int i = 0; i <= 5; i++) {
            double v = bottom + (top - bottom) * i / 5;
            int y = MT + ph - (int) Math.round(ph * i / 5.0);
            if (i > 0) {
                sb.append(line(ML, y, ML + pw, y, "#e5e5e5"));
            }
            sb.append("<text x=\"").append(ML - 6).append("\" y=\"").append(y + 4)
                    .append("\" text-anchor=\"end\">").append(esc(compact(v))).append("</text>\n");
        }
        int n = xs.size();
        int[] px = new int[n];
        for (int i = 0; i < n; i++) {
            px[i] = n == 1 ? ML + pw / 2 : ML + (int) Math.round(pw * (0.05 + 0.9 * i / (n - 1.0)));
            sb.append("<text x=\"").append(px[i]).append("\" y=\"").append(MT + ph + 18)
                    .append("\" text-anchor=\"middle\">").append(esc(xs.get(i))).append("</text>\n");
        }
        sb.append("<text x=\"").append(ML + pw / 2).append("\" y=\"").append(MT + ph + 38)
                .append("\" text-anchor=\"middle\">").append(esc(xKey)).append("</text>\n");
        int s = 0;
        for (Map.Entry<String, BenchResult[]> e : series.entrySet()) {
            String color = COLORS[s % COLORS.length];
            List<String> pts = new ArrayList<>();
            BenchResult[] row = e.getValue();
            for (int i = 0; i < n; i++) {
                if (row[i] == null) {
                    continue;
                }
                double v = m.of(row[i]);
                int y = MT + ph - (int) Math.round(ph * (v - bottom) / (top - bottom));
                pts.add(px[i] + "," + y);
                sb.append("<circle cx=\"").append(px[i]).append("\" cy=\"").append(y).append("\" r=\"3.5\" fill=\"")
                        .append(color).append("\"><title>").append(esc(e.getKey())).append(' ').append(esc(xKey))
                        .append('=').append(esc(xs.get(i))).append(": ").append(esc(compact(v))).append(' ')
                        .append(esc(unit)).append("</title></circle>\n");
            }
            if (pts.size() > 1) {
                sb.append("<polyline fill=\"none\" stroke=\"").append(color).append("\" stroke-width=\"2\" points=\"")
                        .append(String.join(" ", pts)).append("\"/>\n");
            }
            int ly = H + 20 * s + 4;
            sb.append(line(ML, ly, ML + 24, ly, color).replace("stroke-width=\"1\"", "stroke-width=\"3\""));
            sb.append("<text x=\"").append(ML + 30).append("\" y=\"").append(ly + 4).append("\">")
                    .append(esc(e.getKey())).append("</text>\n");
            s++;
        }
        sb.append("</svg>\n");
        return sb.toString();
    }

    /**
     * Wide enough for the longest legend entry (series names such as
     * "iothreads=2 queues=2 backend=file aio=io_uring" run past the plot):
     * 7 px a character bounds the 12 px font the report uses.
     */
    static int svgWidth(java.util.Collection<String> seriesNames) {
        int longest = 0;
        for (String name : seriesNames) {
            longest = Math.max(longest, name.length());
        }
        return Math.max(W, ML + 30 + 7 * longest + 10);
    }

    private static String line(int x1, int y1, int x2, int y2, String color) {
        return "<line x1=\"" + x1 + "\" y1=\"" + y1 + "\" x2=\"" + x2 + "\" y2=\"" + y2 + "\" stroke=\"" + color
                + "\" stroke-width=\"1\"/>\n";
    }

    /** 1, 2, 2.5, 5 or 10 times a power of ten, at least {@code v}. */
    static double niceCeil(double v) {
        double p = Math.pow(10, Math.floor(Math.log10(v)));
        for (double f : new double[] {1, 2, 2.5, 5, 10}) {
            if (f * p >= v) {
                return f * p;
            }
        }
        return 10 * p;
    }

    /** 1234567 → 1.23M, 12345 → 12.3k, 12.5 → 12.5. */
    static String compact(double v) {
        double a = Math.abs(v);
        if (a >= 1e6) {
            return trim(String.format(Locale.ROOT, "%.2f", v / 1e6)) + "M";
        }
        if (a >= 1e4) {
            return trim(String.format(Locale.ROOT, "%.1f", v / 1e3)) + "k";
        }
        if (a >= 100) {
            return String.format(Locale.ROOT, "%.0f", v);
        }
        return trim(String.format(Locale.ROOT, "%.2f", v));
    }

    private static String trim(String s) {
        return s.contains(".") ? s.replaceAll("0+$", "").replaceAll("\\.$", "") : s;
    }

    private static String td(String s) {
        return "<td>" + esc(s) + "</td>";
    }

    static String esc(String s) {
        if (s == null) {
            return "";
        }
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\"", "&quot;");
    }
}
