package io.vblk.vhost;

import static io.vblk.vhost.VhostUserProtocol.HEADER_SIZE;
import static io.vblk.vhost.VhostUserProtocol.MAX_PAYLOAD;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

/**
 * One vhost-user message: header (request, flags, size), payload and the
 * descriptors that came with it. QEMU's {@code VhostUserMsg}; the payload
 * is a little-endian {@link ByteBuffer} read with absolute accessors.
 *
 * <p>Descriptors received with a message belong to it until a handler takes
 * them ({@link #takeFd}); {@link #closeFds()} closes whatever is left, so a
 * refused or malformed message never leaks one.
 */
public final class VhostUserMsg {
    private final int request;
    private final int flags;
    private final ByteBuffer payload;
    private final int[] fds;
    /** Whether the kernel dropped descriptors that did not fit (MSG_CTRUNC). */
    private final boolean fdsTruncated;

    public VhostUserMsg(int request, int flags, byte[] payload, int[] fds) {
        this(request, flags, payload, fds, false);
    }

    private VhostUserMsg(int request, int flags, byte[] payload, int[] fds, boolean truncated) {
        this.request = request;
        this.flags = flags;
        this.payload = ByteBuffer.wrap(payload).order(ByteOrder.LITTLE_ENDIAN);
        this.fds = fds == null ? new int[0] : fds.clone();
        this.fdsTruncated = truncated;
    }

    /** A message without payload. */
    public static VhostUserMsg of(int request, int flags) {
        return new VhostUserMsg(request, flags, new byte[0], null);
    }

    /** A message with a u64 payload. */
    public static VhostUserMsg ofU64(int request, int flags, long value, int... fds) {
        byte[] b = new byte[8];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, value);
        return new VhostUserMsg(request, flags, b, fds);
    }

    /** A message with a {@code vhost_vring_state} payload. */
    public static VhostUserMsg ofState(int request, int flags, int index, int num) {
        byte[] b = new byte[8];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(0, index);
        bb.putInt(4, num);
        return new VhostUserMsg(request, flags, b, null);
    }

    public int request() {
        return request;
    }

    public int flags() {
        return flags;
    }

    public String name() {
        return VhostUserProtocol.name(request);
    }

    public boolean needReply() {
        return (flags & VhostUserProtocol.FLAG_NEED_REPLY) != 0;
    }

    public boolean isReply() {
        return (flags & VhostUserProtocol.FLAG_REPLY) != 0;
    }

    public int version() {
        return flags & VhostUserProtocol.VERSION_MASK;
    }

    public int size() {
        return payload.capacity();
    }

    public ByteBuffer payload() {
        return payload;
    }

    public long u64() {
        return payload.getLong(0);
    }

    public int u32(int offset) {
        return payload.getInt(offset);
    }

    public long u64(int offset) {
        return payload.getLong(offset);
    }

    public byte[] bytes(int offset, int len) {
        byte[] b = new byte[len];
        payload.get(offset, b, 0, len);
        return b;
    }

    public int fdCount() {
        return fds.length;
    }

    public boolean fdsTruncated() {
        return fdsTruncated;
    }

    /** Takes descriptor {@code i}: the caller owns it from now on; -1 if there is none (or it was taken). */
    public int takeFd(int i) {
        if (i >= fds.length) {
            return -1;
        }
        int f = fds[i];
        fds[i] = -1;
        return f;
    }

    /** A copy of this SET_VRING_ADDR with {@code log_guest_addr} (the u64 at 32) set. */
    public VhostUserMsg withLogAddr(long logGuestAddr) {
        byte[] b = new byte[size()];
        payload.get(0, b, 0, b.length);
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(32, logGuestAddr);
        return new VhostUserMsg(request, flags, b, fds);
    }

    /** Descriptor {@code i} without taking it (to check it; the message still closes it if refused); -1 if none. */
    public int peekFd(int i) {
        return i < fds.length ? fds[i] : -1;
    }

    /** Closes every descriptor nobody took. */
    public void closeFds() {
        for (int i = 0; i < fds.length; i++) {
            if (fds[i] >= 0) {
                SocketCalls.close(fds[i]);
                fds[i] = -1;
            }
        }
    }

    // ------------------------------------------------------------------ header checks and replies

    /**
     * What in the header makes this request unanswerable by any handler, or
     * null: the REPLY flag on a request, a protocol version other than 1, or
     * descriptors the kernel dropped because more came than a message carries
     * (MSG_CTRUNC).
     */
    String headerFault() {
        if (isReply()) {
            return "the REPLY flag is set on a request";
        }
        if (version() != VhostUserProtocol.VERSION) {
            return "protocol version " + version() + " (only version 1 exists)";
        }
        if (fdsTruncated) {
            return "the kernel dropped descriptors: more than " + UnixSocket.MAX_FDS + " came with the message";
        }
        return null;
    }

    /** This request's reply carrying {@code payload}. */
    VhostUserMsg reply(byte[] payload) {
        return new VhostUserMsg(request, VhostUserProtocol.VERSION | VhostUserProtocol.FLAG_REPLY, payload, null);
    }

    /** This request's reply carrying {@code payload} and descriptor {@code fd}, which stays the caller's. */
    VhostUserMsg replyWithFd(byte[] payload, int fd) {
        return new VhostUserMsg(request, VhostUserProtocol.VERSION | VhostUserProtocol.FLAG_REPLY, payload,
                new int[] {fd});
    }

    /** This request's reply carrying a u64 (GET_FEATURES, GET_QUEUE_NUM, ...). */
    VhostUserMsg replyU64(long value) {
        return ofU64(request, VhostUserProtocol.VERSION | VhostUserProtocol.FLAG_REPLY, value);
    }

    /** This request's reply carrying a {@code vhost_vring_state} (GET_VRING_BASE). */
    VhostUserMsg replyState(int index, int num) {
        return ofState(request, VhostUserProtocol.VERSION | VhostUserProtocol.FLAG_REPLY, index, num);
    }

    /**
     * The REPLY_ACK answer to a NEED_REPLY request: 0 when it was carried out,
     * non-zero when it failed (vhost-user.rst, "REPLY_ACK").
     */
    VhostUserMsg ack(boolean success) {
        return replyU64(success ? 0 : 1);
    }

    /** A reply without payload: the front-end reads a reply of the wrong size and reports the request failed. */
    VhostUserMsg emptyReply() {
        return of(request, VhostUserProtocol.VERSION | VhostUserProtocol.FLAG_REPLY);
    }

    // ------------------------------------------------------------------ wire format

    /** Header and payload in one buffer, descriptors alongside: one {@code sendmsg}. */
    public void write(UnixSocket s) {
        write(s, false);
    }

    /** As {@link #write} but never waits: a peer that does not read is an error ({@link UnixSocket#sendNow}). */
    public void writeNow(UnixSocket s) {
        write(s, true);
    }

    private void write(UnixSocket s, boolean now) {
        int n = HEADER_SIZE + size();
        byte[] b = new byte[n];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(0, request);
        bb.putInt(4, flags);
        bb.putInt(8, size());
        payload.get(0, b, HEADER_SIZE, size());
        int[] live = fds.length == 0 ? null : fds;
        if (now) {
            s.sendNow(b, n, live);
        } else {
            s.send(b, n, live);
        }
    }

    /**
     * Reads one message: the header (with any descriptors), then the payload.
     * Returns null on a clean end of file before a header.
     *
     * @throws VhostUserException when the connection fails or the header names a payload past {@link
     *         VhostUserProtocol#MAX_PAYLOAD} (the stream cannot be trusted after it; descriptors are closed)
     */
    public static VhostUserMsg read(UnixSocket s) {
        byte[] h = new byte[HEADER_SIZE];
        List<Integer> fds = new ArrayList<>();
        boolean ok;
        try {
            ok = s.receiveFully(h, 0, HEADER_SIZE, fds);
        } catch (VhostUserException e) {
            closeAll(fds);
            throw e;
        }
        if (!ok) {
            closeAll(fds);
            return null;
        }
        ByteBuffer hb = ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN);
        int request = hb.getInt(0);
        int flags = hb.getInt(4);
        long size = hb.getInt(8) & 0xffff_ffffL;
        if (size > MAX_PAYLOAD) {
            closeAll(fds);
            throw new VhostUserException(String.format("%s: malformed header: %s (flags 0x%x) announces %d payload "
                    + "bytes, more than the %d any vhost-user message has", s.name(), VhostUserProtocol.name(request),
                    flags, size, MAX_PAYLOAD));
        }
        byte[] p = new byte[(int) size];
        if (size > 0) {
            try {
                s.receiveFully(p, 0, p.length, fds);
            } catch (VhostUserException e) {
                closeAll(fds);
                throw e;
            }
        }
        boolean truncated = fds.remove(Integer.valueOf(-1));
        int[] a = new int[fds.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = fds.get(i);
        }
        return new VhostUserMsg(request, flags, p, a, truncated);
    }

    /** A message read piece by piece, as the bytes arrive ({@link MessageReader}). */
    static VhostUserMsg assembled(int request, int flags, byte[] payload, List<Integer> fds) {
        boolean truncated = fds.remove(Integer.valueOf(-1));
        int[] a = new int[fds.size()];
        for (int i = 0; i < a.length; i++) {
            a[i] = fds.get(i);
        }
        return new VhostUserMsg(request, flags, payload, a, truncated);
    }

    static void closeAll(List<Integer> fds) {
        for (int f : fds) {
            if (f >= 0) {
                SocketCalls.close(f);
            }
        }
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder(name());
        sb.append(String.format(" flags=0x%x size=%d", flags, size()));
        if (size() == 8) {
            sb.append(String.format(" u64=0x%x", u64()));
        }
        if (fds.length > 0) {
            sb.append(" fds=").append(fds.length);
        }
        return sb.toString();
    }
}
