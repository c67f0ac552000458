package io.vblk.vhost;

/**
 * A vhost-user connection failed: the peer closed it, a socket call failed,
 * a reply did not come in time, or the peer broke the protocol. The message
 * says which, naming the socket and the request.
 */
public class VhostUserException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final boolean disconnected;

    public VhostUserException(String message) {
        this(message, false);
    }

    public VhostUserException(String message, boolean disconnected) {
        super(message);
        this.disconnected = disconnected;
    }

    /** Whether the peer went away (end of file, connection reset, broken pipe). */
    public boolean disconnected() {
        return disconnected;
    }
}
