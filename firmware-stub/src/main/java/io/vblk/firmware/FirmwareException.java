package io.vblk.firmware;

/** A failure the firmware reports on its console and turns into a {@link BootVerdict}. */
final class FirmwareException extends Exception {
    private static final long serialVersionUID = 1L;
    private final BootVerdict verdict;

    FirmwareException(BootVerdict verdict, String message) {
        super(message);
        this.verdict = verdict;
    }

    BootVerdict verdict() {
        return verdict;
    }
}
