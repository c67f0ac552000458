package io.vblk.bench;

import java.util.Locale;

/** Parsing and printing of the sizes, durations and switches {@code vblk bench} takes, fio's way. */
public final class Units {
    private Units() {
    }

    /** {@code 4k}, {@code 64K}, {@code 1m}, {@code 2g}, {@code 512} (bytes; binary multiples). */
    public static long parseBytes(String what, String s) {
        String t = s.trim().toLowerCase(Locale.ROOT);
        if (t.endsWith("ib")) {
            t = t.substring(0, t.length() - 2);
        } else if (t.endsWith("b")) {
            t = t.substring(0, t.length() - 1);
        }
        long mult = 1;
        if (!t.isEmpty()) {
            switch (t.charAt(t.length() - 1)) {
                case 'k':
                    mult = 1L << 10;
                    break;
                case 'm':
                    mult = 1L << 20;
                    break;
                case 'g':
                    mult = 1L << 30;
                    break;
                case 't':
                    mult = 1L << 40;
                    break;
                default:
                    break;
            }
            if (mult != 1) {
                t = t.substring(0, t.length() - 1);
            }
        }
        try {
            long v = Long.parseLong(t);
            if (v < 0 || v > Long.MAX_VALUE / mult) {
                throw new NumberFormatException();
            }
            return v * mult;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + what + " takes a size such as 4k, 64k, 1m or 512, not '" + s
                    + "'");
        }
    }

    /** {@code 10s}, {@code 500ms}, {@code 2m}, {@code 1.5s}, {@code 250us}; a bare number is seconds. */
    public static long parseDurationNs(String what, String s) {
        String t = s.trim().toLowerCase(Locale.ROOT);
        double mult;
        if (t.endsWith("ms")) {
            mult = 1e6;
            t = t.substring(0, t.length() - 2);
        } else if (t.endsWith("us")) {
            mult = 1e3;
            t = t.substring(0, t.length() - 2);
        } else if (t.endsWith("ns")) {
            mult = 1;
            t = t.substring(0, t.length() - 2);
        } else if (t.endsWith("s")) {
            mult = 1e9;
            t = t.substring(0, t.length() - 1);
        } else if (t.endsWith("m")) {
            mult = 60e9;
            t = t.substring(0, t.length() - 1);
        } else if (t.endsWith("h")) {
            mult = 3600e9;
            t = t.substring(0, t.length() - 1);
        } else {
            mult = 1e9;
        }
        try {
            double v = Double.parseDouble(t);
            if (!(v >= 0) || Double.isInfinite(v) || v * mult > 1e18 || t.startsWith("+")) {
                throw new NumberFormatException();
            }
            return Math.round(v * mult);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + what + " takes a duration such as 10s, 500ms or 2m, not '" + s
                    + "'");
        }
    }

    public static int parseInt(String what, String s) {
        try {
            return Integer.parseInt(s.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + what + " takes a whole number, not '" + s + "'");
        }
    }

    public static long parseLong(String what, String s) {
        try {
            return Long.parseLong(s.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + what + " takes a whole number, not '" + s + "'");
        }
    }

    public static boolean parseOnOff(String what, String s) {
        switch (s.trim().toLowerCase(Locale.ROOT)) {
            case "on":
                return true;
            case "off":
                return false;
            default:
                throw new IllegalArgumentException("--" + what + " must be 'on' or 'off', not '" + s + "'");
        }
    }

    /** 4096 → {@code 4k}, 65536 → {@code 64k}, 1 GiB → {@code 1g}; otherwise bytes. */
    public static String bytes(long n) {
        if (n != 0 && n % (1L << 30) == 0) {
            return (n >> 30) + "g";
        }
        if (n != 0 && n % (1L << 20) == 0) {
            return (n >> 20) + "m";
        }
        if (n != 0 && n % (1L << 10) == 0) {
            return (n >> 10) + "k";
        }
        return Long.toString(n);
    }

    /** A duration for humans: {@code 10s}, {@code 1.5s}, {@code 250ms}. */
    public static String duration(long ns) {
        if (ns % 1_000_000_000L == 0) {
            return (ns / 1_000_000_000L) + "s";
        }
        if (ns >= 1_000_000_000L) {
            return String.format(Locale.ROOT, "%.3gs", ns / 1e9);
        }
        if (ns % 1_000_000L == 0) {
            return (ns / 1_000_000L) + "ms";
        }
        return String.format(Locale.ROOT, "%.3gms", ns / 1e6);
    }
}
