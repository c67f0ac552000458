package io.vblk.guest;

/** The guest driver could not bring up or use the device (what Linux would print as a probe failure). */
public final class GuestDriverException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public GuestDriverException(String message) {
        super(message);
    }
}
