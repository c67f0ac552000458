package io.vblk.firmware;

import java.nio.charset.StandardCharsets;

/** Lines on the COM1 serial port, one byte per port write, as a BIOS prints. */
final class Console {
    private final Platform p;

    Console(Platform p) {
        this.p = p;
    }

    void println(String line) {
        for (byte b : (line + "\n").getBytes(StandardCharsets.US_ASCII)) {
            p.out(Platform.SERIAL_PORT, 1, b & 0xff);
        }
    }
}
