package io.vblk.nbd;

import static io.vblk.nbd.NbdProto.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.nio.charset.StandardCharsets;
import java.util.Collection;
import java.util.List;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The handshake codec without a socket: each option's reply, byte for byte, and what ends the connection. */
class NbdNegotiationTest {
    /** An export as the handshake sees it. */
    record Fake(String name, String description, long size, boolean writable) implements NbdNegotiation.Target {
        @Override
        public int transmissionFlags(boolean structured) {
            return FLAG_HAS_FLAGS | (writable ? 0 : FLAG_READ_ONLY) | (structured ? FLAG_SEND_DF : 0);
        }
    }

    private final Fake disk = new Fake("disk", "the disk", 1 << 20, false);
    private final Fake other = new Fake("other", "", 4096, true);
    private final NbdNegotiation.Targets targets = new NbdNegotiation.Targets() {
        @Override
        public NbdNegotiation.Target find(String name) {
            return name.equals("disk") ? disk : name.equals("other") ? other : null;
        }

        @Override
        public Collection<? extends NbdNegotiation.Target> list() {
            return List.of(disk, other);
        }
    };

    private NbdNegotiation neg;
    private ByteBuf in;
    private ByteBuf out;

    @BeforeEach
    void setUp() {
        neg = new NbdNegotiation(targets, "test");
        in = Unpooled.buffer();
        out = Unpooled.buffer();
    }

    private NbdNegotiation.Kind start() {
        neg.greeting(out);
        assertEquals(NBDMAGIC, out.readLong());
        assertEquals(IHAVEOPT, out.readLong());
        assertEquals(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, out.readUnsignedShort());
        in.writeInt(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
        return neg.step(in, out);
    }

    private void option(int opt, byte[] data) {
        in.writeLong(IHAVEOPT).writeInt(opt).writeInt(data.length).writeBytes(data);
    }

    /** Reads one option reply header, checks magic and option, returns {type, length}. */
    private int[] reply(int opt) {
        assertEquals(OPT_REPLY_MAGIC, out.readLong());
        assertEquals(opt, out.readInt());
        return new int[] {out.readInt(), out.readInt()};
    }

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void listNamesEveryExportWithItsDescription() {
        assertEquals(NbdNegotiation.Kind.NEED_MORE, start());
        option(OPT_LIST, new byte[0]);
        assertEquals(NbdNegotiation.Kind.NEED_MORE, neg.step(in, out));
        int[] r = reply(OPT_LIST);
        assertEquals(REP_SERVER, r[0]);
        assertEquals(4 + 4 + 8, r[1]);
        assertEquals(4, out.readInt());
        assertEquals("disk", out.readCharSequence(4, StandardCharsets.UTF_8).toString());
        assertEquals("the disk", out.readCharSequence(8, StandardCharsets.UTF_8).toString());
        r = reply(OPT_LIST);
        assertEquals(REP_SERVER, r[0]);
        out.skipBytes(r[1]);
        assertEquals(REP_ACK, reply(OPT_LIST)[0]);
        assertFalse(out.isReadable());
    }

    @Test
    void goAnswersBlockSizeAndExportInfoThenEntersTransmission() {
        start();
        option(OPT_STRUCTURED_REPLY, new byte[0]);
        byte[] name = bytes("disk");
        ByteBuf go = Unpooled.buffer().writeInt(name.length).writeBytes(name).writeShort(2).writeShort(INFO_NAME)
                .writeShort(INFO_DESCRIPTION);
        option(OPT_GO, toArray(go));
        assertEquals(NbdNegotiation.Kind.TRANSMISSION, neg.step(in, out));
        assertEquals(REP_ACK, reply(OPT_STRUCTURED_REPLY)[0]);
        int[] r = reply(OPT_GO);
        assertEquals(REP_INFO, r[0]);
        assertEquals(INFO_NAME, out.readUnsignedShort());
        assertEquals("disk", out.readCharSequence(r[1] - 2, StandardCharsets.UTF_8).toString());
        r = reply(OPT_GO);
        assertEquals(INFO_DESCRIPTION, out.readUnsignedShort());
        assertEquals("the disk", out.readCharSequence(r[1] - 2, StandardCharsets.UTF_8).toString());
        r = reply(OPT_GO);
        assertEquals(14, r[1]);
        assertEquals(INFO_BLOCK_SIZE, out.readUnsignedShort());
        assertEquals(1, out.readInt());
        assertEquals(PREFERRED_BLOCK, out.readInt());
        assertEquals(MAX_PAYLOAD, out.readInt());
        r = reply(OPT_GO);
        assertEquals(12, r[1]);
        assertEquals(INFO_EXPORT, out.readUnsignedShort());
        assertEquals(1 << 20, out.readLong());
        assertEquals(FLAG_HAS_FLAGS | FLAG_READ_ONLY | FLAG_SEND_DF, out.readUnsignedShort());
        assertEquals(REP_ACK, reply(OPT_GO)[0]);
        assertSame(disk, neg.chosen());
        assertTrue(neg.structured());
    }

    private static byte[] toArray(ByteBuf b) {
        byte[] a = new byte[b.readableBytes()];
        b.readBytes(a);
        return a;
    }

    @Test
    void malformedAndUnknownOptionsGetErrorsAndTheHandshakeGoesOn() {
        start();
        option(42, new byte[] {1, 2, 3});
        option(OPT_INFO, toArray(Unpooled.buffer().writeInt(100).writeBytes(bytes("disk")).writeShort(0)));
        option(OPT_INFO, toArray(Unpooled.buffer().writeInt(4).writeBytes(bytes("nope")).writeShort(0)));
        option(OPT_SET_META_CONTEXT, new byte[8]);
        option(OPT_STARTTLS, new byte[0]);
        option(OPT_LIST, new byte[1]);
        assertEquals(NbdNegotiation.Kind.NEED_MORE, neg.step(in, out));
        int[] r = reply(42);
        assertEquals(REP_ERR_UNSUP, r[0], "unknown option");
        out.skipBytes(r[1]);
        r = reply(OPT_INFO);
        assertEquals(REP_ERR_INVALID, r[0], "name length beyond the option");
        out.skipBytes(r[1]);
        r = reply(OPT_INFO);
        assertEquals(REP_ERR_UNKNOWN, r[0], "unknown export");
        out.skipBytes(r[1]);
        r = reply(OPT_SET_META_CONTEXT);
        assertEquals(REP_ERR_INVALID, r[0], "meta context without structured replies");
        out.skipBytes(r[1]);
        r = reply(OPT_STARTTLS);
        assertEquals(REP_ERR_POLICY, r[0], "no TLS");
        out.skipBytes(r[1]);
        r = reply(OPT_LIST);
        assertEquals(REP_ERR_INVALID, r[0], "LIST with data");
        out.skipBytes(r[1]);
        assertFalse(out.isReadable());
    }

    @Test
    void setMetaContextSelectsBaseAllocationForTheExportChosen() {
        start();
        option(OPT_STRUCTURED_REPLY, new byte[0]);
        option(OPT_SET_META_CONTEXT, NbdTestClient.metaData("disk", "qemu:dirty-bitmap:x", BASE_ALLOCATION));
        option(OPT_LIST_META_CONTEXT, NbdTestClient.metaData("disk"));
        assertEquals(NbdNegotiation.Kind.NEED_MORE, neg.step(in, out));
        assertEquals(REP_ACK, reply(OPT_STRUCTURED_REPLY)[0]);
        int[] r = reply(OPT_SET_META_CONTEXT);
        assertEquals(REP_META_CONTEXT, r[0]);
        assertEquals(META_ID_BASE_ALLOCATION, out.readInt());
        assertEquals(BASE_ALLOCATION, out.readCharSequence(r[1] - 4, StandardCharsets.UTF_8).toString());
        assertEquals(REP_ACK, reply(OPT_SET_META_CONTEXT)[0]);
        r = reply(OPT_LIST_META_CONTEXT);
        assertEquals(REP_META_CONTEXT, r[0], "LIST without queries lists every context");
        out.skipBytes(r[1]);
        assertEquals(REP_ACK, reply(OPT_LIST_META_CONTEXT)[0]);
        assertTrue(neg.metaAllocation());

        option(OPT_GO, NbdTestClient.goData("other"));
        assertEquals(NbdNegotiation.Kind.TRANSMISSION, neg.step(in, out));
        assertFalse(neg.metaAllocation(), "contexts chosen for 'disk' do not apply to 'other'");
    }

    @Test
    void partialOptionsWaitForTheirRest() {
        start();
        byte[] go = NbdTestClient.goData("disk");
        in.writeLong(IHAVEOPT).writeInt(OPT_GO).writeInt(go.length).writeBytes(go, 0, 3);
        assertEquals(NbdNegotiation.Kind.NEED_MORE, neg.step(in, out));
        assertFalse(out.isReadable(), "nothing answered before the option is complete");
        in.writeBytes(go, 3, go.length - 3);
        assertEquals(NbdNegotiation.Kind.TRANSMISSION, neg.step(in, out));
    }

    @Test
    void exportNameOfAKnownExportRepliesWithoutZeroesAndOfAnUnknownOneCloses() {
        start();
        option(OPT_EXPORT_NAME, bytes("other"));
        assertEquals(NbdNegotiation.Kind.TRANSMISSION, neg.step(in, out));
        assertEquals(4096, out.readLong());
        assertEquals(FLAG_HAS_FLAGS, out.readUnsignedShort());
        assertFalse(out.isReadable(), "NO_ZEROES was negotiated: no 124 zero bytes");

        setUp();
        start();
        option(OPT_EXPORT_NAME, bytes("nope"));
        assertEquals(NbdNegotiation.Kind.CLOSE, neg.step(in, out));
        assertTrue(neg.closeReason().contains("nope"));
    }

    @Test
    void wrongMagicUnknownFlagsOversizeOptionsAndAbortEndTheConnection() {
        neg.greeting(out);
        in.writeInt(0x80);
        assertEquals(NbdNegotiation.Kind.CLOSE, neg.step(in, out), "unknown client flags");

        setUp();
        start();
        in.writeLong(0x1234).writeInt(OPT_GO).writeInt(0);
        assertEquals(NbdNegotiation.Kind.CLOSE, neg.step(in, out), "wrong option magic");

        setUp();
        start();
        in.writeLong(IHAVEOPT).writeInt(OPT_GO).writeInt(MAX_OPTION_LENGTH + 1);
        assertEquals(NbdNegotiation.Kind.CLOSE, neg.step(in, out), "option longer than the server accepts");

        setUp();
        start();
        option(OPT_ABORT, new byte[0]);
        assertEquals(NbdNegotiation.Kind.CLOSE, neg.step(in, out));
        assertEquals(REP_ACK, reply(OPT_ABORT)[0], "ABORT is acknowledged before the close");
    }
}
