package io.vblk.nbd;

import static io.vblk.nbd.NbdProto.*;

import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;
import java.util.Collection;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fixed-newstyle handshake of one client: QEMU's {@code nbd_negotiate}
 * and {@code nbd_negotiate_options} (nbd/server.c). A pure codec: it reads
 * the client's bytes from a buffer and writes its replies to another, so a
 * test drives it without a socket. {@link #step} consumes whole messages
 * only; a partial option stays in the input until the rest arrives.
 *
 * <p>Bad input follows the spec: a malformed or unknown option gets an
 * {@code NBD_REP_ERR_*} reply and the handshake goes on; only what leaves no
 * way to continue (a wrong magic, unknown client flags, an option longer
 * than {@link NbdProto#MAX_OPTION_LENGTH}, {@code NBD_OPT_EXPORT_NAME} of an
 * unknown export, {@code NBD_OPT_ABORT}) ends the connection.
 */
final class NbdNegotiation {
    private static final Logger LOG = LoggerFactory.getLogger(NbdNegotiation.class);

    /** What an export looks like to the handshake. */
    interface Target {
        String name();

        String description();

        long size();

        /** The transmission flags, which depend on whether structured replies were negotiated (DF). */
        int transmissionFlags(boolean structured);
    }

    /** The exports a client may name. */
    interface Targets {
        Target find(String name);

        Collection<? extends Target> list();
    }

    enum Kind { NEED_MORE, TRANSMISSION, CLOSE }

    private final Targets targets;
    private final String peer;
    private boolean gotClientFlags;
    private boolean noZeroes;
    private boolean structured;
    private boolean metaAllocation;
    private String metaExport;
    private Target chosen;
    private String closeReason;
    private boolean closeWarn;

    NbdNegotiation(Targets targets, String peer) {
        this.targets = targets;
        this.peer = peer;
    }

    /** The server's first bytes: NBDMAGIC, IHAVEOPT and the handshake flags. */
    void greeting(ByteBuf out) {
        out.writeLong(NBDMAGIC);
        out.writeLong(IHAVEOPT);
        out.writeShort(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    }

    /** Consumes every complete message in {@code in}, writing replies to {@code out}. */
    Kind step(ByteBuf in, ByteBuf out) {
        if (!gotClientFlags) {
            if (in.readableBytes() < 4) {
                return Kind.NEED_MORE;
            }
            int flags = in.readInt();
            gotClientFlags = true;
            if ((flags & ~(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) != 0) {
                return close("unknown client flags 0x" + Integer.toHexString(flags), true);
            }
            noZeroes = (flags & FLAG_C_NO_ZEROES) != 0;
        }
        while (in.readableBytes() >= 16) {
            int at = in.readerIndex();
            long magic = in.getLong(at);
            if (magic != IHAVEOPT) {
                return close("bad option magic 0x" + Long.toHexString(magic), true);
            }
            int opt = in.getInt(at + 8);
            long len = in.getUnsignedInt(at + 12);
            if (len > MAX_OPTION_LENGTH) {
                return close("option " + optionName(opt) + " of " + len + " bytes (at most " + MAX_OPTION_LENGTH + ")", true);
            }
            if (in.readableBytes() < 16 + len) {
                return Kind.NEED_MORE;
            }
            in.skipBytes(16);
            ByteBuf data = in.readSlice((int) len);
            Kind k = option(opt, data, out);
            if (k != Kind.NEED_MORE) {
                return k;
            }
        }
        return Kind.NEED_MORE;
    }

    private Kind option(int opt, ByteBuf data, ByteBuf out) {
        LOG.trace("nbd_negotiate_options_check_option {}: {} length {}", peer, optionName(opt), data.readableBytes());
        switch (opt) {
            case OPT_EXPORT_NAME:
                return exportName(data, out);
            case OPT_ABORT:
                reply(out, opt, REP_ACK, null);
                return close("the client aborted the handshake", false);
            case OPT_LIST:
                if (data.isReadable()) {
                    return error(out, opt, REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
                }
                for (Target t : targets.list()) {
                    byte[] n = utf8(t.name());
                    byte[] d = utf8(t.description());
                    header(out, opt, REP_SERVER, 4 + n.length + d.length);
                    out.writeInt(n.length).writeBytes(n).writeBytes(d);
                }
                reply(out, opt, REP_ACK, null);
                return Kind.NEED_MORE;
            case OPT_STARTTLS:
                return error(out, opt, REP_ERR_POLICY, "TLS is not configured on this server");
            case OPT_INFO:
            case OPT_GO:
                return infoOrGo(opt, data, out);
            case OPT_STRUCTURED_REPLY:
                if (data.isReadable()) {
                    return error(out, opt, REP_ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
                }
                if (structured) {
                    return error(out, opt, REP_ERR_INVALID, "structured replies are already negotiated");
                }
                structured = true;
                reply(out, opt, REP_ACK, null);
                return Kind.NEED_MORE;
            case OPT_LIST_META_CONTEXT:
            case OPT_SET_META_CONTEXT:
                return metaContext(opt, data, out);
            default:
                return error(out, opt, REP_ERR_UNSUP, "option " + opt + " is not supported");
        }
    }

    private Kind exportName(ByteBuf data, ByteBuf out) {
        if (data.readableBytes() > MAX_STRING) {
            return close("NBD_OPT_EXPORT_NAME with a name of " + data.readableBytes() + " bytes", true);
        }
        String name = data.toString(StandardCharsets.UTF_8);
        Target t = targets.find(name);
        if (t == null) {
            return close("NBD_OPT_EXPORT_NAME of unknown export '" + name + "'", true); // the spec's only answer
        }
        out.writeLong(t.size());
        out.writeShort(t.transmissionFlags(structured));
        if (!noZeroes) {
            out.writeZero(124);
        }
        if (!name.equals(metaExport)) {
            metaAllocation = false;
        }
        chosen = t;
        return Kind.TRANSMISSION;
    }

    private Kind infoOrGo(int opt, ByteBuf data, ByteBuf out) {
        int len = data.readableBytes();
        if (len < 6) {
            return error(out, opt, REP_ERR_INVALID, "request too short");
        }
        long nameLen = data.readUnsignedInt();
        if (nameLen > len - 6 || nameLen > MAX_STRING) {
            return error(out, opt, REP_ERR_INVALID, "name length " + nameLen + " does not fit the option");
        }
        String name = data.readCharSequence((int) nameLen, StandardCharsets.UTF_8).toString();
        int nreq = data.readUnsignedShort();
        if (data.readableBytes() != 2 * nreq) {
            return error(out, opt, REP_ERR_INVALID, "information request count " + nreq + " does not match the length");
        }
        boolean wantName = false;
        boolean wantDescription = false;
        for (int i = 0; i < nreq; i++) {
            int r = data.readUnsignedShort();
            wantName |= r == INFO_NAME;
            wantDescription |= r == INFO_DESCRIPTION;
        }
        Target t = targets.find(name);
        if (t == null) {
            return error(out, opt, REP_ERR_UNKNOWN, "export '" + name + "' not present");
        }
        if (wantName) {
            byte[] n = utf8(t.name());
            header(out, opt, REP_INFO, 2 + n.length);
            out.writeShort(INFO_NAME).writeBytes(n);
        }
        String desc = t.description();
        if (wantDescription && desc != null && !desc.isEmpty()) {
            byte[] d = utf8(desc);
            header(out, opt, REP_INFO, 2 + d.length);
            out.writeShort(INFO_DESCRIPTION).writeBytes(d);
        }
        // Always sent, as QEMU does: byte-granular I/O is fine, 4 KiB is best, payloads are at most 32 MiB.
        header(out, opt, REP_INFO, 14);
        out.writeShort(INFO_BLOCK_SIZE).writeInt(1).writeInt(PREFERRED_BLOCK).writeInt(MAX_PAYLOAD);
        header(out, opt, REP_INFO, 12);
        out.writeShort(INFO_EXPORT).writeLong(t.size()).writeShort(t.transmissionFlags(structured));
        reply(out, opt, REP_ACK, null);
        if (opt == OPT_INFO) {
            return Kind.NEED_MORE;
        }
        if (!name.equals(metaExport)) {
            metaAllocation = false; // contexts chosen for another export do not carry over
        }
        chosen = t;
        return Kind.TRANSMISSION;
    }

    private Kind metaContext(int opt, ByteBuf data, ByteBuf out) {
        boolean set = opt == OPT_SET_META_CONTEXT;
        if (!structured) {
            return error(out, opt, REP_ERR_INVALID, "structured replies are not negotiated");
        }
        if (data.readableBytes() < 8) {
            return error(out, opt, REP_ERR_INVALID, "request too short");
        }
        long nameLen = data.readUnsignedInt();
        if (nameLen > data.readableBytes() - 4 || nameLen > MAX_STRING) {
            return error(out, opt, REP_ERR_INVALID, "name length " + nameLen + " does not fit the option");
        }
        String name = data.readCharSequence((int) nameLen, StandardCharsets.UTF_8).toString();
        long nq = data.readUnsignedInt();
        boolean match = !set && nq == 0; // LIST without queries lists every context
        for (long i = 0; i < nq; i++) {
            if (data.readableBytes() < 4) {
                return error(out, opt, REP_ERR_INVALID, "query " + i + " is truncated");
            }
            long ql = data.readUnsignedInt();
            if (ql > data.readableBytes() || ql > MAX_STRING) {
                return error(out, opt, REP_ERR_INVALID, "query " + i + " of length " + ql + " does not fit the option");
            }
            String q = data.readCharSequence((int) ql, StandardCharsets.UTF_8).toString();
            match |= q.equals(BASE_ALLOCATION) || (!set && q.equals("base:"));
        }
        if (data.isReadable()) {
            return error(out, opt, REP_ERR_INVALID, data.readableBytes() + " bytes after the last query");
        }
        if (targets.find(name) == null) {
            return error(out, opt, REP_ERR_UNKNOWN, "export '" + name + "' not present");
        }
        if (match) {
            byte[] c = utf8(BASE_ALLOCATION);
            header(out, opt, REP_META_CONTEXT, 4 + c.length);
            out.writeInt(META_ID_BASE_ALLOCATION).writeBytes(c);
        }
        if (set) {
            metaAllocation = match;
            metaExport = name;
        }
        reply(out, opt, REP_ACK, null);
        return Kind.NEED_MORE;
    }

    private static void header(ByteBuf out, int opt, int type, int len) {
        out.writeLong(OPT_REPLY_MAGIC).writeInt(opt).writeInt(type).writeInt(len);
    }

    private static void reply(ByteBuf out, int opt, int type, String message) {
        byte[] m = message == null ? new byte[0] : utf8(message);
        header(out, opt, type, m.length);
        out.writeBytes(m);
    }

    private Kind error(ByteBuf out, int opt, int type, String message) {
        LOG.info("nbd {}: {} refused: {}", peer, optionName(opt), message);
        reply(out, opt, type, message);
        return Kind.NEED_MORE;
    }

    private Kind close(String why, boolean warn) {
        closeReason = why;
        closeWarn = warn;
        return Kind.CLOSE;
    }

    private static byte[] utf8(String s) {
        return s == null ? new byte[0] : s.getBytes(StandardCharsets.UTF_8);
    }

    String closeReason() {
        return closeReason;
    }

    boolean closeIsWarning() {
        return closeWarn;
    }

    Target chosen() {
        return chosen;
    }

    boolean structured() {
        return structured;
    }

    boolean metaAllocation() {
        return metaAllocation;
    }
}
