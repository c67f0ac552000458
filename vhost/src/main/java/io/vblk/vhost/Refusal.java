package io.vblk.vhost;

/**
 * A request the back-end will not carry out: malformed (a payload size or
 * descriptor count its type does not have), unsupported, or invalid in the
 * current state. The transport ({@link VhostUserConnection#answer}) logs it
 * once, naming the fault, and answers it as the protocol says (a u64 ack of
 * 1, or an empty reply for a request that has one); the connection goes on.
 * libvhost-user's handlers return false or call {@code vu_panic} for the
 * same cases. No stack trace: the fault is the front-end's, not ours.
 */
final class Refusal extends RuntimeException {
    private static final long serialVersionUID = 1L;

    Refusal(String why) {
        super(why, null, false, false);
    }
}
