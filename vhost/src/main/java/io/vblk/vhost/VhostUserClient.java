package io.vblk.vhost;

import static io.vblk.vhost.VhostUserProtocol.CONFIG_HEADER_SIZE;
import static io.vblk.vhost.VhostUserProtocol.FLAG_NEED_REPLY;
import static io.vblk.vhost.VhostUserProtocol.STATE_SIZE;
import static io.vblk.vhost.VhostUserProtocol.U64_SIZE;
import static io.vblk.vhost.VhostUserProtocol.VERSION;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The front-end's end of a vhost-user connection: QEMU's
 * hw/virtio/vhost-user.c ({@code vhost_user_write}, {@code vhost_user_read},
 * {@code process_message_reply}). Each call sends one request and, when the
 * request has a reply or REPLY_ACK was negotiated, waits for it — bounded
 * by the reply timeout, so a back-end that stops answering is an error
 * naming the request, never a hang. Thread-safe: one request at a time.
 */
public final class VhostUserClient implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserClient.class);

    private final UnixSocket sock;
    private final Path path;
    private final Duration replyTimeout;
    private boolean replyAck;
    private volatile boolean broken;

    private VhostUserClient(UnixSocket sock, Path path, Duration replyTimeout) {
        this.sock = sock;
        this.path = path;
        this.replyTimeout = replyTimeout;
    }

    /** Connects; {@code replyTimeout} bounds every wait for a reply (a back-end drains before answering some). */
    public static VhostUserClient connect(Path path, Duration replyTimeout) {
        UnixSocket s = UnixSocket.connect(path);
        try {
            s.setTimeouts(replyTimeout, replyTimeout);
        } catch (RuntimeException e) {
            s.close();
            throw e;
        }
        return new VhostUserClient(s, path, replyTimeout);
    }

    public Path path() {
        return path;
    }

    public Duration replyTimeout() {
        return replyTimeout;
    }

    /** The socket's descriptor (a front-end watches it: the back-end closing it is how a crash shows). */
    public int fd() {
        return sock.fd();
    }

    /** A request with {@code payload} and descriptors, acked when REPLY_ACK is on (SET_INFLIGHT_FD). */
    public void sendWithFds(int request, byte[] payload, int... fds) {
        send(new VhostUserMsg(request, flags(), payload, fds));
    }

    /** Whether a request failed on the socket (the back-end went away or stopped answering). */
    public boolean isBroken() {
        return broken;
    }

    /** Asks for NEED_REPLY acks from now on (after REPLY_ACK was negotiated). */
    public synchronized void setReplyAck(boolean on) {
        replyAck = on;
    }

    // ------------------------------------------------------------------ requests

    public long getU64(int request) {
        return requestReply(VhostUserMsg.of(request, VERSION)).u64();
    }

    /** A u64 request, acked when REPLY_ACK is on; {@code fd} (or none) rides along. */
    public void setU64(int request, long value, int... fds) {
        send(VhostUserMsg.ofU64(request, flags(), value, fds));
    }

    /** A request without payload (SET_OWNER, RESET_DEVICE), acked when REPLY_ACK is on. */
    public void request(int request) {
        send(VhostUserMsg.of(request, flags()));
    }

    /** A {@code vhost_vring_state} request (NUM, BASE, ENABLE). */
    public void setState(int request, int index, int num) {
        send(VhostUserMsg.ofState(request, flags(), index, num));
    }

    /** GET_VRING_BASE: the back-end stops the ring and answers where it stopped. */
    public int getVringBase(int index) {
        VhostUserMsg r = requestReply(VhostUserMsg.ofState(VhostUserProtocol.GET_VRING_BASE, VERSION, index, 0));
        if (r.size() != STATE_SIZE) {
            throw fail(VhostUserProtocol.GET_VRING_BASE, "reply of " + r.size() + " bytes");
        }
        return r.u32(4);
    }

    /** SET_VRING_ADDR with front-end (host) virtual addresses. */
    public void setVringAddr(int index, long desc, long used, long avail) {
        setVringAddr(index, 0, desc, used, avail, 0);
    }

    /** SET_VRING_ADDR with flags (VHOST_VRING_F_LOG = 1) and the used ring's guest-physical log address. */
    public void setVringAddr(int index, int flags, long desc, long used, long avail, long logGuestAddr) {
        byte[] b = new byte[VhostUserProtocol.ADDR_SIZE];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(0, index);
        bb.putInt(4, flags);
        bb.putLong(8, desc);
        bb.putLong(16, used);
        bb.putLong(24, avail);
        bb.putLong(32, logGuestAddr);
        send(new VhostUserMsg(VhostUserProtocol.SET_VRING_ADDR, flags(), b, null));
    }

    /** One region: ADD_MEM_REG (CONFIGURE_MEM_SLOTS) payload. */
    public void addMemReg(long gpa, long size, long uaddr, long offset, int fd) {
        byte[] b = new byte[VhostUserProtocol.MEM_REG_SIZE];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putLong(8, gpa);
        bb.putLong(16, size);
        bb.putLong(24, uaddr);
        bb.putLong(32, offset);
        send(new VhostUserMsg(VhostUserProtocol.ADD_MEM_REG, flags(), b, new int[] {fd}));
    }

    /** SET_MEM_TABLE with one region per descriptor. */
    public void setMemTable(long[] gpa, long[] size, long[] uaddr, long[] offset, int[] fds) {
        int n = fds.length;
        byte[] b = new byte[VhostUserProtocol.MEMORY_HEADER_SIZE + VhostUserProtocol.REGION_SIZE * n];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(0, n);
        for (int i = 0; i < n; i++) {
            int o = VhostUserProtocol.MEMORY_HEADER_SIZE + VhostUserProtocol.REGION_SIZE * i;
            bb.putLong(o, gpa[i]);
            bb.putLong(o + 8, size[i]);
            bb.putLong(o + 16, uaddr[i]);
            bb.putLong(o + 24, offset[i]);
        }
        send(new VhostUserMsg(VhostUserProtocol.SET_MEM_TABLE, flags(), b, fds));
    }

    /** GET_CONFIG of {@code size} bytes at {@code offset}. */
    public byte[] getConfig(int offset, int size) {
        byte[] b = new byte[CONFIG_HEADER_SIZE + size];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(0, offset);
        bb.putInt(4, size);
        VhostUserMsg r = requestReply(new VhostUserMsg(VhostUserProtocol.GET_CONFIG, VERSION, b, null));
        if (r.size() != CONFIG_HEADER_SIZE + size) {
            throw fail(VhostUserProtocol.GET_CONFIG, "the back-end answered " + r.size() + " bytes for a "
                    + size + "-byte config read (it refused it)");
        }
        return r.bytes(CONFIG_HEADER_SIZE, size);
    }

    /** SET_CONFIG (VHOST_SET_CONFIG_TYPE_FRONTEND). */
    public void setConfig(int offset, byte[] data) {
        byte[] b = new byte[CONFIG_HEADER_SIZE + data.length];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(0, offset);
        bb.putInt(4, data.length);
        System.arraycopy(data, 0, b, CONFIG_HEADER_SIZE, data.length);
        send(new VhostUserMsg(VhostUserProtocol.SET_CONFIG, flags(), b, null));
    }

    private synchronized int flags() {
        return VERSION | (replyAck ? FLAG_NEED_REPLY : 0);
    }

    /** Sends a request without a reply of its own; waits for the ack if it asked for one. */
    public synchronized void send(VhostUserMsg m) {
        write(m);
        if (m.needReply()) {
            VhostUserMsg r = readReply(m.request());
            if (r.size() != U64_SIZE) {
                throw fail(m.request(), "ack of " + r.size() + " bytes");
            }
            if (r.u64() != 0) {
                throw fail(m.request(), "the back-end refused it (ack " + r.u64() + ")");
            }
        }
    }

    /** Sends a request that has a reply and returns the reply. */
    public synchronized VhostUserMsg requestReply(VhostUserMsg m) {
        write(m);
        VhostUserMsg r = readReply(m.request());
        if (r.size() == 0 && m.request() != VhostUserProtocol.GET_CONFIG) {
            throw fail(m.request(), "empty reply (the back-end refused it)");
        }
        return r;
    }

    private void write(VhostUserMsg m) {
        if (LOG.isDebugEnabled()) {
            LOG.debug("vhost-user {}: -> {}", path, m);
        }
        try {
            m.write(sock);
        } catch (VhostUserException e) {
            broken = true;
            throw fail(m.request(), e.getMessage());
        }
    }

    private VhostUserMsg readReply(int request) {
        VhostUserMsg r;
        try {
            r = VhostUserMsg.read(sock);
        } catch (VhostUserException e) {
            broken = true;
            throw fail(request, e.getMessage());
        }
        if (r == null) {
            broken = true;
            throw new VhostUserException("vhost-user back-end at " + path + " closed the connection (waiting for the "
                    + "reply to " + VhostUserProtocol.name(request) + ")", true);
        }
        if (request != VhostUserProtocol.GET_INFLIGHT_FD) {
            r.closeFds(); // only GET_INFLIGHT_FD's reply carries a descriptor, which the caller takes
        }
        if (!r.isReply() || r.request() != request) {
            r.closeFds();
            broken = true;
            throw fail(request, "got " + r + " instead of its reply");
        }
        if (LOG.isDebugEnabled()) {
            LOG.debug("vhost-user {}: <- {}", path, r);
        }
        return r;
    }

    private VhostUserException fail(int request, String why) {
        return new VhostUserException("vhost-user back-end at " + path + ": " + VhostUserProtocol.name(request)
                + " failed: " + why, broken);
    }

    @Override
    public void close() {
        sock.close();
    }
}
