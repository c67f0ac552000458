package io.vblk.vhost;

import static io.vblk.vhost.VhostUserProtocol.HEADER_SIZE;
import static io.vblk.vhost.VhostUserProtocol.MAX_PAYLOAD;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * Assembles one vhost-user message from whatever a non-blocking socket has,
 * across as many wake-ups as the bytes take: libvhost-user's
 * {@code vu_message_read} without its blocking {@code recvmsg}. The back-end's
 * main loop never waits for a front-end's bytes (DESIGN rule 9): a header
 * whose payload does not come is the caller's to time out
 * ({@link #inProgress}), not a thread stuck in {@code recv}.
 *
 * <p>Descriptors that arrive with any part of the message are kept with it
 * and closed if the message is abandoned ({@link #close}).
 */
final class MessageReader implements AutoCloseable {
    private final UnixSocket sock;
    private final byte[] header = new byte[HEADER_SIZE];
    private final List<Integer> fds = new ArrayList<>();
    private byte[] payload;
    private int headerGot;
    private int payloadGot;
    private int request;
    private int flags;

    MessageReader(UnixSocket sock) {
        this.sock = sock;
    }

    /** Whether part of a message arrived and the rest has not. */
    boolean inProgress() {
        return headerGot > 0;
    }

    /** What has arrived of the message in progress, for the log line when it is abandoned. */
    String progress() {
        if (headerGot < HEADER_SIZE) {
            return headerGot + " of the " + HEADER_SIZE + " header bytes";
        }
        return VhostUserProtocol.name(request) + " with " + payloadGot + " of its " + payload.length
                + " payload bytes";
    }

    /**
     * Reads what the socket has. Returns the complete message, or null when
     * more bytes are needed (nothing is left unread that belongs to it: the
     * next wake-up continues).
     *
     * @throws VhostUserException at end of file ({@code disconnected}), on a
     *         socket error, or for a header that announces a payload larger
     *         than any message (the stream cannot be resynchronised)
     */
    VhostUserMsg readAvailable() {
        while (headerGot < HEADER_SIZE) {
            int n = sock.receiveNow(header, headerGot, HEADER_SIZE - headerGot, fds);
            if (n < 0) {
                return null;
            }
            if (n == 0) {
                throw eof();
            }
            headerGot += n;
        }
        if (payload == null) {
            ByteBuffer hb = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
            request = hb.getInt(0);
            flags = hb.getInt(4);
            long size = hb.getInt(8) & 0xffff_ffffL;
            if (size > MAX_PAYLOAD) {
                throw new VhostUserException(String.format("%s: malformed header: %s (flags 0x%x) announces %d "
                        + "payload bytes, more than the %d any vhost-user message has", sock.name(),
                        VhostUserProtocol.name(request), flags, size, MAX_PAYLOAD));
            }
            payload = new byte[(int) size];
        }
        while (payloadGot < payload.length) {
            int n = sock.receiveNow(payload, payloadGot, payload.length - payloadGot, fds);
            if (n < 0) {
                return null;
            }
            if (n == 0) {
                throw eof();
            }
            payloadGot += n;
        }
        VhostUserMsg m = VhostUserMsg.assembled(request, flags, payload, fds);
        fds.clear();
        payload = null;
        headerGot = 0;
        payloadGot = 0;
        return m;
    }

    private VhostUserException eof() {
        if (headerGot == 0) {
            return new VhostUserException("the front-end closed the connection", true);
        }
        return new VhostUserException("the front-end closed the connection in the middle of a message ("
                + progress() + ")", true);
    }

    /** Closes the descriptors of an abandoned message. */
    @Override
    public void close() {
        VhostUserMsg.closeAll(fds);
        fds.clear();
    }
}
