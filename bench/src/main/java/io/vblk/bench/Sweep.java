package io.vblk.bench;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;

/**
 * A {@code --sweep}: parameters and their values, e.g.
 * {@code iothreads=1,2 qd=1,8,32,128}. The grid is their cartesian product,
 * the first parameter outermost; the last parameter is the chart's x axis and
 * every combination of the others is one line.
 */
public final class Sweep {
    private final LinkedHashMap<String, List<String>> axes;

    private Sweep(LinkedHashMap<String, List<String>> axes) {
        this.axes = axes;
    }

    /** Parses {@code key=v1,v2,...} terms; throws with a one-line message on a bad term. */
    public static Sweep parse(List<String> terms) {
        LinkedHashMap<String, List<String>> axes = new LinkedHashMap<>();
        for (String term : terms) {
            for (String t : term.trim().split("\\s+")) {
                if (t.isEmpty()) {
                    continue;
                }
                int eq = t.indexOf('=');
                if (eq <= 0 || eq == t.length() - 1) {
                    throw new IllegalArgumentException("--sweep takes terms like qd=1,8,32, not '" + t + "'");
                }
                String key = t.substring(0, eq);
                if (!BenchConfig.SWEEP_PARAMETERS.contains(key)) {
                    throw new IllegalArgumentException("--sweep cannot vary '" + key + "' (it can vary "
                            + BenchConfig.SWEEP_KEYS + ")");
                }
                if (axes.containsKey(key)) {
                    throw new IllegalArgumentException("--sweep names '" + key + "' twice");
                }
                List<String> values = new ArrayList<>(new LinkedHashSet<>(List.of(t.substring(eq + 1).split(","))));
                for (String v : values) {
                    if (v.isEmpty()) {
                        throw new IllegalArgumentException("--sweep " + key + ": empty value in '" + t + "'");
                    }
                }
                axes.put(key, values);
            }
        }
        if (axes.isEmpty()) {
            throw new IllegalArgumentException("--sweep needs at least one term like qd=1,8,32");
        }
        return new Sweep(axes);
    }

    public Map<String, List<String>> axes() {
        return axes;
    }

    /** The parameter on the chart's x axis (the last one named). */
    public String xKey() {
        String last = null;
        for (String k : axes.keySet()) {
            last = k;
        }
        return last;
    }

    /** The other parameters: each combination of theirs is one line of the chart. */
    public List<String> seriesKeys() {
        List<String> l = new ArrayList<>(axes.keySet());
        l.remove(l.size() - 1);
        return l;
    }

    /** Every point of the grid applied to {@code base}; invalid points are an error naming the point. */
    public List<BenchConfig> expand(BenchConfig base) {
        List<BenchConfig> out = new ArrayList<>();
        out.add(base);
        for (Map.Entry<String, List<String>> e : axes.entrySet()) {
            List<BenchConfig> next = new ArrayList<>();
            for (BenchConfig c : out) {
                for (String v : e.getValue()) {
                    next.add(c.with(e.getKey(), v));
                }
            }
            out = next;
        }
        for (BenchConfig c : out) {
            String p = c.validate();
            if (p != null) {
                throw new IllegalArgumentException("sweep point " + label(c, new ArrayList<>(axes.keySet())) + ": "
                        + p);
            }
        }
        return out;
    }

    /** {@code iothreads=1 qd=8}, for the given keys. */
    public static String label(BenchConfig c, List<String> keys) {
        StringBuilder sb = new StringBuilder();
        for (String k : keys) {
            if (sb.length() > 0) {
                sb.append(' ');
            }
            sb.append(k).append('=').append(c.value(k));
        }
        return sb.toString();
    }
}
