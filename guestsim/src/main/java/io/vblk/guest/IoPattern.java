package io.vblk.guest;

/** An fio-style access pattern: {@code randread}, {@code randwrite}, {@code read}, {@code write}, {@code randrw[:pct]}. */
public record IoPattern(boolean random, int readPercent) {
    public IoPattern {
        if (readPercent < 0 || readPercent > 100) {
            throw new IllegalArgumentException("read percentage must be 0..100, got " + readPercent);
        }
    }

    /** Parses fio's spelling; {@code randrw:70} reads 70% of the time (default 50). */
    public static IoPattern parse(String s) {
        switch (s) {
            case "randread":
                return new IoPattern(true, 100);
            case "randwrite":
                return new IoPattern(true, 0);
            case "read":
                return new IoPattern(false, 100);
            case "write":
                return new IoPattern(false, 0);
            case "randrw":
                return new IoPattern(true, 50);
            default:
                if (s.startsWith("randrw:")) {
                    try {
                        return new IoPattern(true, Integer.parseInt(s.substring(7)));
                    } catch (NumberFormatException e) {
                        // fall through to the error below
                    }
                }
                throw new IllegalArgumentException("unknown I/O pattern '" + s
                        + "' (expected randread, randwrite, read, write, randrw or randrw:PCT)");
        }
    }

    @Override
    public String toString() {
        if (readPercent == 100) {
            return random ? "randread" : "read";
        }
        if (readPercent == 0) {
            return random ? "randwrite" : "write";
        }
        return "randrw:" + readPercent;
    }
}
