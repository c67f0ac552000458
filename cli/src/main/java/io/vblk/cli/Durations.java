package io.vblk.cli;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/** A list of measured durations and the order statistics the summaries print. */
final class Durations {
    private final List<Long> nanos = new ArrayList<>();

    void add(long ns) {
        nanos.add(ns);
    }

    int count() {
        return nanos.size();
    }

    /** The q-quantile (0..1) by nearest rank, in milliseconds; NaN when empty. */
    double quantileMs(double q) {
        if (nanos.isEmpty()) {
            return Double.NaN;
        }
        List<Long> s = new ArrayList<>(nanos);
        Collections.sort(s);
        int rank = (int) Math.ceil(q * s.size()) - 1;
        return s.get(Math.max(0, Math.min(rank, s.size() - 1))) / 1e6;
    }

    String medianP99() {
        if (nanos.isEmpty()) {
            return "-";
        }
        return String.format("%.2f ms / %.2f ms", quantileMs(0.5), quantileMs(0.99));
    }
}
