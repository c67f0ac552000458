package io.vblk.vhost;

import static io.vblk.vhost.VhostUserProtocol.CONFIG_HEADER_SIZE;
import static io.vblk.vhost.VhostUserProtocol.MAX_CONFIG_SIZE;
import static io.vblk.vhost.VhostUserProtocol.MAX_TABLE_REGIONS;
import static io.vblk.vhost.VhostUserProtocol.MEMORY_HEADER_SIZE;
import static io.vblk.vhost.VhostUserProtocol.REGION_SIZE;
import static io.vblk.vhost.VhostUserProtocol.U64_SIZE;
import static io.vblk.vhost.VhostUserProtocol.VRING_NOFD_MASK;

import java.util.function.BiConsumer;

/**
 * One entry of the back-end's message table ({@link VhostUserDispatcher}):
 * the request code, the payload size and descriptor count its type has, and
 * what it does. The sizes are checked before the body runs, so a body reads
 * its payload without further length checks; a message that disagrees with
 * its type is refused with one line naming the fault. QEMU's libvhost-user
 * does these checks inside each {@code vu_*_exec} case of
 * {@code vu_process_message} ({@code vu_check_queue_msg_file},
 * {@code vmsg->size} tests); here they are declared beside the code.
 *
 * <p>Checks return the fault as text, or null when the message is fine.
 */
final class MessageHandler {
    /** What a request does: returns its reply, or null when it has none of its own (REPLY_ACK may still ack it). */
    @FunctionalInterface
    interface Body {
        VhostUserMsg run(VhostUserDispatcher d, VhostUserMsg m);
    }

    /** One declared property of a message (payload size or descriptor count): the fault, or null. */
    @FunctionalInterface
    interface Check {
        String fault(VhostUserMsg m);
    }

    final int request;
    /** Whether the request has a reply of its own (then a refusal is answered with an empty one). */
    final boolean replies;
    private final Check payload;
    private final Check fds;
    private final Body body;

    private MessageHandler(int request, boolean replies, Check payload, Check fds, Body body) {
        this.request = request;
        this.replies = replies;
        this.payload = payload;
        this.fds = fds;
        this.body = body;
    }

    /** A request answered with a reply of its own (the GET_* family). */
    static MessageHandler answers(int request, Check payload, Check fds, Body body) {
        return new MessageHandler(request, true, payload, fds, body);
    }

    /** A request without a reply of its own. */
    static MessageHandler does(int request, Check payload, Check fds, BiConsumer<VhostUserDispatcher,
            VhostUserMsg> action) {
        return new MessageHandler(request, false, payload, fds, (d, m) -> {
            action.accept(d, m);
            return null;
        });
    }

    /** A request this back-end refuses whatever it carries (a feature it does not offer). */
    static MessageHandler refuses(int request, String why) {
        return new MessageHandler(request, VhostUserProtocol.hasReply(request), ignored(), unused(), (d, m) -> {
            throw new Refusal(why);
        });
    }

    /** Checks the payload size, then the descriptor count, then runs the body. */
    VhostUserMsg run(VhostUserDispatcher d, VhostUserMsg m) {
        String fault = payload.fault(m);
        if (fault == null) {
            fault = fds.fault(m);
        }
        if (fault != null) {
            throw new Refusal(fault);
        }
        return body.run(d, m);
    }

    // ------------------------------------------------------------------ payload sizes

    /** The body reads no payload; whatever comes is ignored (front-ends differ: some send a zero u64). */
    static Check ignored() {
        return m -> null;
    }

    static Check exactly(int size) {
        return m -> sizeFault(m, size);
    }

    private static String sizeFault(VhostUserMsg m, int size) {
        return m.size() == size ? null : "payload of " + m.size() + " bytes, expected " + size;
    }

    /** No payload or a u64: SET_BACKEND_REQ_FD (QEMU sends none, some front-ends a u64). */
    static Check noneOrU64() {
        return m -> m.size() == 0 || m.size() == U64_SIZE ? null : "payload of " + m.size() + " bytes, expected none";
    }

    /** {@code VhostUserMemory}: a header with 1..8 regions, then exactly that many regions. */
    static Check memoryTable() {
        return m -> {
            if (m.size() < MEMORY_HEADER_SIZE) {
                return "payload of " + m.size() + " bytes, shorter than the table header";
            }
            int n = m.u32(0);
            if (n < 1 || n > MAX_TABLE_REGIONS) {
                return n + " regions (1.." + MAX_TABLE_REGIONS + " allowed)";
            }
            return sizeFault(m, MEMORY_HEADER_SIZE + REGION_SIZE * n);
        };
    }

    /**
     * {@code VhostUserConfig}: the header, then exactly the bytes its size
     * field names (at most a config space). The range (offset, size) is the
     * body's to check against the device.
     */
    static Check config() {
        return m -> {
            if (m.size() < CONFIG_HEADER_SIZE) {
                return "payload of " + m.size() + " bytes, shorter than the config header";
            }
            long size = m.u32(4) & 0xffff_ffffL;
            if (size > MAX_CONFIG_SIZE) {
                return "config size " + size + " larger than the " + MAX_CONFIG_SIZE + " a config space has";
            }
            return sizeFault(m, CONFIG_HEADER_SIZE + (int) size);
        };
    }

    // ------------------------------------------------------------------ descriptors

    /**
     * The request takes no descriptor; any that come are closed unused, not
     * refused (QEMU sends REM_MEM_REG with the region's descriptor).
     */
    static Check unused() {
        return m -> null;
    }

    static Check fds(int n) {
        return m -> fdFault(m, n);
    }

    private static String fdFault(VhostUserMsg m, int n) {
        return m.fdCount() == n ? null : m.fdCount() + " descriptors, expected " + n;
    }

    /**
     * SET_VRING_KICK/CALL/ERR: one descriptor, unless the u64 payload sets
     * VHOST_USER_VRING_NOFD_MASK (then none is read). Runs after the payload
     * check, so the u64 is there.
     */
    static Check oneUnlessNoFd() {
        return m -> (m.u64() & VRING_NOFD_MASK) != 0 ? null : fdFault(m, 1);
    }

    /** SET_MEM_TABLE: one descriptor per region. Runs after {@link #memoryTable()}. */
    static Check onePerRegion() {
        return m -> fdFault(m, m.u32(0));
    }

    @Override
    public String toString() {
        return VhostUserProtocol.name(request);
    }
}
