package io.vblk.nbd;

import static io.vblk.nbd.NbdProto.*;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

/**
 * A minimal NBD client speaking the wire protocol byte by byte, for the
 * tests that need what no real client sends: pipelined requests read back
 * out of order, malformed requests, a client vanishing mid-request. Blocking;
 * tests bound it with a deadline.
 */
final class NbdTestClient implements AutoCloseable {
    final SocketChannel ch;
    final DataInputStream in;
    final DataOutputStream out;
    long size;
    int transmissionFlags;

    NbdTestClient(Path socket) throws IOException {
        ch = SocketChannel.open(UnixDomainSocketAddress.of(socket));
        in = new DataInputStream(new BufferedInputStream(Channels.newInputStream(ch)));
        out = new DataOutputStream(new BufferedOutputStream(Channels.newOutputStream(ch)));
    }

    /** Reads the greeting and sends the client flags (fixed newstyle, no zeroes). */
    void greet() throws IOException {
        assertEquals(NBDMAGIC, in.readLong());
        assertEquals(IHAVEOPT, in.readLong());
        assertEquals(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, in.readUnsignedShort());
        out.writeInt(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
    }

    void option(int opt, byte[] data) throws IOException {
        out.writeLong(IHAVEOPT);
        out.writeInt(opt);
        out.writeInt(data.length);
        out.write(data);
        out.flush();
    }

    /** One option reply: {type, data}. */
    OptReply optReply(int expectOpt) throws IOException {
        assertEquals(OPT_REPLY_MAGIC, in.readLong());
        assertEquals(expectOpt, in.readInt());
        int type = in.readInt();
        int len = in.readInt();
        byte[] d = new byte[len];
        in.readFully(d);
        return new OptReply(type, d);
    }

    record OptReply(int type, byte[] data) {
    }

    static byte[] goData(String name) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 + n.length + 2);
        b.putInt(n.length).put(n).putShort((short) 0);
        return b.array();
    }

    static byte[] metaData(String name, String... queries) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        int len = 4 + n.length + 4;
        for (String q : queries) {
            len += 4 + q.length();
        }
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(len);
        b.putInt(n.length).put(n).putInt(queries.length);
        for (String q : queries) {
            b.putInt(q.length()).put(q.getBytes(StandardCharsets.UTF_8));
        }
        return b.array();
    }

    /** The whole handshake up to transmission: optionally structured replies and base:allocation, then GO. */
    NbdTestClient connect(String export, boolean structured, boolean meta) throws IOException {
        greet();
        if (structured) {
            option(OPT_STRUCTURED_REPLY, new byte[0]);
            assertEquals(REP_ACK, optReply(OPT_STRUCTURED_REPLY).type());
        }
        if (meta) {
            option(OPT_SET_META_CONTEXT, metaData(export, BASE_ALLOCATION));
            assertEquals(REP_META_CONTEXT, optReply(OPT_SET_META_CONTEXT).type());
            assertEquals(REP_ACK, optReply(OPT_SET_META_CONTEXT).type());
        }
        option(OPT_GO, goData(export));
        for (;;) {
            OptReply r = optReply(OPT_GO);
            if (r.type() == REP_ACK) {
                return this;
            }
            assertEquals(REP_INFO, r.type(), "GO answered with an error: " + new String(r.data(), StandardCharsets.UTF_8));
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(r.data());
            if (b.getShort() == INFO_EXPORT) {
                size = b.getLong();
                transmissionFlags = b.getShort() & 0xffff;
            }
        }
    }

    void request(int type, int flags, long handle, long offset, int length, byte[] payload) throws IOException {
        out.writeInt(REQUEST_MAGIC);
        out.writeShort(flags);
        out.writeShort(type);
        out.writeLong(handle);
        out.writeLong(offset);
        out.writeInt(length);
        if (payload != null) {
            out.write(payload);
        }
        out.flush();
    }

    /** A simple reply's {error, handle}; the payload of a read is left to the caller. */
    long[] simpleReply() throws IOException {
        assertEquals(SIMPLE_REPLY_MAGIC, in.readInt(), "simple reply magic");
        int err = in.readInt();
        long handle = in.readLong();
        return new long[] {err, handle};
    }

    /** One structured chunk: header fields and payload. */
    Chunk chunk() throws IOException {
        assertEquals(STRUCTURED_REPLY_MAGIC, in.readInt(), "structured reply magic");
        int flags = in.readUnsignedShort();
        int type = in.readUnsignedShort();
        long handle = in.readLong();
        int len = in.readInt();
        byte[] d = new byte[len];
        in.readFully(d);
        return new Chunk(flags, type, handle, d);
    }

    record Chunk(int flags, int type, long handle, byte[] data) {
        int error() {
            return java.nio.ByteBuffer.wrap(data).getInt();
        }
    }

    byte[] readFully(int n) throws IOException {
        byte[] b = new byte[n];
        in.readFully(b);
        return b;
    }

    /** Whether the server closed the connection (the next read sees end of file). */
    boolean closedByServer() throws IOException {
        try {
            return in.read() < 0;
        } catch (IOException e) {
            return true; // reset by the peer
        }
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
