package io.vblk.nbd;

/** A control-path failure of the NBD server (listen, export add/remove), with a message for the user. */
public class NbdException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public NbdException(String message) {
        super(message);
    }
}
