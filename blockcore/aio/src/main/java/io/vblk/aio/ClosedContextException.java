package io.vblk.aio;

/** Thrown out of a poll of a context that was closed, so loops and waits on it unwind. */
public final class ClosedContextException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ClosedContextException(String context) {
        super("AioContext '" + context + "' is closed");
    }
}
