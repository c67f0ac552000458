package io.vblk.vhost;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The transport of one front-end connection, back-end side: reads one whole
 * message — the header with the descriptors that came with it (SCM_RIGHTS,
 * through {@link UnixSocket}), then the payload ({@link VhostUserMsg#read}) —
 * has the device answer it and writes the reply. libvhost-user's
 * {@code vu_dispatch} with {@code vu_message_read} and {@code vu_send_reply};
 * QEMU's util/vhost-user-server.c drives it the same way, one message at a
 * time ({@code vu_client_trip}).
 *
 * <h2>Reply rules</h2>
 * {@link #answer} applies docs/interop/vhost-user.rst's rules around the
 * handler ({@link VhostUserDispatcher}): a header no handler may see (the
 * REPLY flag on a request, another version, descriptors the kernel dropped)
 * is refused; a request with a reply of its own always gets one — empty when
 * refused, which front-ends report as an error; a NEED_REPLY request
 * (VHOST_USER_PROTOCOL_F_REPLY_ACK) without one gets a u64 ack, 0 for
 * success and 1 for failure; descriptors no handler took are closed. Nothing
 * a front-end sends throws out of it.
 *
 * <h2>Never waiting for the front-end</h2>
 * The socket is read and written with MSG_DONTWAIT: a message is assembled
 * across wake-ups ({@link MessageReader}) and the server drops a front-end
 * whose message stays incomplete past its deadline; a reply the front-end's
 * full receive buffer cannot take ends the connection. No thread of the
 * back-end ever sleeps in {@code recvmsg} or {@code sendmsg} on a
 * front-end's behalf, so one connection cannot stop the main loop that
 * serves SIGTERM and the next front-end.
 *
 * <h2>When the connection ends</h2>
 * At end of file, on a socket error, on a header the stream cannot survive
 * (a payload larger than any message: its bytes would be read as the next
 * header), or when a reply cannot be sent. {@link #serveOne} then says why;
 * the server ({@link VhostUserServer}) stops the device and accepts the next
 * front-end.
 */
final class VhostUserConnection implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserConnection.class);

    /** Why a connection ended, and whether that deserves a warning (the front-end broke the protocol). */
    record Ended(String why, boolean warn) {
    }

    private final UnixSocket sock;
    private final MessageReader reader;

    VhostUserConnection(UnixSocket sock) {
        this.sock = sock;
        this.reader = new MessageReader(sock);
    }

    int fd() {
        return sock.fd();
    }

    /** Whether part of a message arrived and the rest has not (the server times that out). */
    boolean messageInProgress() {
        return reader.inProgress();
    }

    /** What arrived of the incomplete message, for the line that says why the connection was dropped. */
    String messageProgress() {
        return reader.progress();
    }

    /**
     * Reads what the socket has without waiting; once a whole message is
     * there, has {@code device} answer it and sends the reply without
     * waiting. Returns null to go on serving (a message was answered, or more
     * bytes are needed), or why the connection ends.
     */
    Ended serveOne(VhostUserDevice device) {
        VhostUserMsg m;
        try {
            m = reader.readAvailable();
        } catch (VhostUserException e) {
            return new Ended(e.disconnected() ? e.getMessage() : "dropped: " + e.getMessage(), !e.disconnected()
                    || reader.inProgress());
        } catch (RuntimeException e) {
            LOG.error("vhost-user: reading a message failed", e);
            return new Ended("dropped: " + e, true);
        }
        if (m == null) {
            return null;
        }
        VhostUserMsg reply = device.process(m);
        if (reply != null) {
            if (LOG.isDebugEnabled()) {
                LOG.debug("vhost-user: -> {}", reply);
            }
            try {
                reply.writeNow(sock);
            } catch (VhostUserException e) {
                return new Ended("reply to " + m.name() + " not delivered: " + e.getMessage(), !e.disconnected());
            }
        }
        return null;
    }

    /**
     * The answer to one request: the handler's reply, a REPLY_ACK ack, a
     * failure answer, or null. Every refusal is reported to {@code d} (one
     * log line); the message's descriptors no handler took are closed.
     */
    static VhostUserMsg answer(VhostUserMsg m, VhostUserDispatcher d) {
        d.received(m);
        try {
            String fault = m.headerFault();
            if (fault != null) {
                throw new Refusal(fault);
            }
            VhostUserMsg reply = d.dispatch(m);
            if (reply == null && m.needReply()) {
                reply = m.ack(true);
            }
            return reply;
        } catch (RuntimeException e) {
            d.refused(m, e);
            return failureReply(m);
        } finally {
            m.closeFds();
        }
    }

    private static VhostUserMsg failureReply(VhostUserMsg m) {
        if (VhostUserProtocol.hasReply(m.request())) {
            return m.emptyReply();
        }
        if (m.needReply()) {
            return m.ack(false);
        }
        return null;
    }

    @Override
    public void close() {
        reader.close();
        sock.close();
    }

    @Override
    public String toString() {
        return sock.toString();
    }
}
