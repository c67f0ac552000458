package io.vblk.block;

import io.vblk.aio.Errno;

/** What a backend does when a request fails: QEMU's {@code BlockdevOnError} ({@code rerror=}/{@code werror=}). */
public enum ErrorPolicy {
    /** Complete the request with the error (the guest sees it). */
    REPORT,
    /** Complete the request as if it succeeded. */
    IGNORE,
    /** Keep the request, record the I/O status and stop the machine; resubmit on resume. */
    STOP,
    /** STOP for ENOSPC, REPORT for every other error. */
    ENOSPC;

    boolean stops(int ret) {
        return this == STOP || (this == ENOSPC && ret == -Errno.ENOSPC);
    }

    /** Parses the QEMU spelling ("report", "ignore", "stop", "enospc"). */
    public static ErrorPolicy parse(String s) {
        for (ErrorPolicy p : values()) {
            if (p.name().equalsIgnoreCase(s)) {
                return p;
            }
        }
        throw new IllegalArgumentException("unknown error policy '" + s + "' (expected report, ignore, stop or enospc)");
    }
}
