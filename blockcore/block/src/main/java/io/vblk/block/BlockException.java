package io.vblk.block;

/** A control-path failure of the block layer (open, graph change, context move), with a message for the user. */
public class BlockException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public BlockException(String message) {
        super(message);
    }

    public BlockException(String message, Throwable cause) {
        super(message, cause);
    }
}
