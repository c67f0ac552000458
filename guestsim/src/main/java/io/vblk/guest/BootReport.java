package io.vblk.guest;

import io.vblk.firmware.BootVerdict;

import java.util.List;

/** What one boot produced: the firmware's verdict, its console lines, how long it took, and a dump if it hung. */
public record BootReport(BootVerdict verdict, List<String> console, long nanos, String dump) {
    public boolean ok() {
        return verdict == BootVerdict.MBR_OK;
    }
}
