package io.vblk.virtio.blk;

import static io.vblk.virtio.blk.VirtioBlkAbi.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlockFlags;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.VirtQueue;
import io.vblk.virtio.blk.VirtioBlkReq.Kind;
import io.vblk.testkit.BlkHeaders;
import io.vblk.testkit.Bytes;
import io.vblk.testkit.GuestRing;
import io.vblk.testkit.GuestRing.Buf;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The request parser on its own: every outcome the device acts on, from
 * chains written into guest memory and popped by a real {@link VirtQueue}.
 */
class VirtioBlkRequestParserTest {
    private static final long CAPACITY = 2048; // sectors: 1 MiB
    private static final long ALL = F_DISCARD | F_WRITE_ZEROES;
    private static final int QSIZE = 16;

    private GuestMemory mem;
    private VirtQueue vq;
    private final VirtioBlkRequestParser parser = new VirtioBlkRequestParser(CAPACITY, false);
    private final VirtioBlkRequestParser readOnly = new VirtioBlkRequestParser(CAPACITY, true);
    private final List<String> broken = new ArrayList<>();
    private GuestRing ring;

    @BeforeEach
    void setUp() {
        mem = GuestMemory.allocate(0, 1 << 20);
        ring = new GuestRing(mem, 0x1000, QSIZE, 0x10000, 0x80000);
        vq = new VirtQueue("parser-test", 0, QSIZE, mem, (q, why) -> broken.add(why));
        ring.configure(vq);
        assertTrue(vq.enable());
    }

    @AfterEach
    void tearDown() {
        assertEquals(List.of(), broken, "the test chains are well-formed rings");
        mem.close();
    }

    // ------------------------------------------------------------------ the driver side: the test kit

    private Buf out(byte[] data) {
        return ring.out(data);
    }

    private Buf in(int len) {
        return ring.in(len);
    }

    private static byte[] header(int type, long sector) {
        return BlkHeaders.outhdr(type, sector);
    }

    private static byte[] segment(long sector, long sectors, int flags) {
        return BlkHeaders.dwzSegment(sector, sectors, flags);
    }

    private static byte[] concat(byte[]... parts) {
        return Bytes.concat(parts);
    }

    /** Makes the chain available and pops it into a fresh request. */
    private VirtioBlkReq pop(Buf... bufs) {
        ring.add(bufs);
        ring.publish();
        VirtioBlkReq r = new VirtioBlkReq(null, null);
        assertTrue(vq.pop(r.elem), "the chain pops");
        return r;
    }

    private Kind parse(VirtioBlkReq r) {
        return parser.parse(r, ALL, true);
    }

    private void assertAnswer(VirtioBlkReq r, Kind k, int status) {
        assertEquals(Kind.ANSWER, k);
        assertEquals(Kind.ANSWER, r.kind);
        assertEquals(status, r.status, "status");
        assertEquals(0, r.qiov.count(), "an answer carries no buffers");
    }

    // ------------------------------------------------------------------ guest errors (DEVICE_NEEDS_RESET)

    @Test
    void noWritableStatusByteIsAGuestError() {
        VirtioBlkReq r = pop(out(header(T_IN, 0)), out(new byte[512]));
        assertEquals(Kind.GUEST_ERROR, parse(r));
        assertEquals("a request without a writable status byte", r.error);
    }

    @Test
    void noHeaderIsAGuestError() {
        VirtioBlkReq r = pop(in(513));
        assertEquals(Kind.GUEST_ERROR, parse(r));
        assertEquals("a request header of 0 bytes (16 needed)", r.error);
    }

    @Test
    void aMissingStatusByteIsNamedBeforeAShortHeader() {
        VirtioBlkReq r = pop(out(new byte[8]));
        assertEquals(Kind.GUEST_ERROR, parse(r));
        assertEquals("a request without a writable status byte", r.error);
    }

    @Test
    void shortHeaderIsAGuestError() {
        VirtioBlkReq r = pop(out(new byte[8]), in(1));
        assertEquals(Kind.GUEST_ERROR, parse(r));
        assertEquals("a request header of 8 bytes (16 needed)", r.error);
    }

    // ------------------------------------------------------------------ answered at once

    @Test
    void getIdAnswersOkWithTheSerialLength() {
        VirtioBlkReq r = pop(out(header(T_GET_ID, 0)), in(64));
        assertAnswer(r, parse(r), S_OK);
        assertEquals(SERIAL_BYTES + 1, r.inLen, "20 bytes of serial and the status byte");
        VirtioBlkReq small = pop(out(header(T_GET_ID, 0)), in(9));
        assertAnswer(small, parse(small), S_OK);
        assertEquals(9, small.inLen, "a short buffer gets what fits");
    }

    @Test
    void getIdWithRoomForTheStatusOnlyAnswersNoSerial() {
        VirtioBlkReq r = pop(out(header(T_GET_ID, 0)), in(1));
        assertAnswer(r, parse(r), S_OK);
        assertEquals(1, r.inLen);
    }

    @Test
    void unknownTypeIsUnsupported() {
        VirtioBlkReq r = pop(out(header(99, 0)), in(1));
        assertAnswer(r, parse(r), S_UNSUPP);
        assertEquals(1, r.inLen);
    }

    @Test
    void misalignedReadAndWriteAreIoErrors() {
        VirtioBlkReq rd = pop(out(header(T_IN, 0)), in(100), in(1));
        assertAnswer(rd, parse(rd), S_IOERR);
        VirtioBlkReq wr = pop(out(concat(header(T_OUT, 0), new byte[100])), in(1));
        assertAnswer(wr, parse(wr), S_IOERR);
    }

    @Test
    void outOfRangeIsAnIoError() {
        VirtioBlkReq past = pop(out(header(T_IN, CAPACITY)), in(512), in(1));
        assertAnswer(past, parse(past), S_IOERR);
        VirtioBlkReq straddling = pop(out(header(T_OUT, CAPACITY - 1)), out(new byte[1024]), in(1));
        assertAnswer(straddling, parse(straddling), S_IOERR);
        VirtioBlkReq huge = pop(out(header(T_IN, -1L)), in(512), in(1)); // sector 2^64-1, unsigned
        assertAnswer(huge, parse(huge), S_IOERR);
    }

    @Test
    void writeToReadOnlyDiskIsAnIoError() {
        VirtioBlkReq r = pop(out(header(T_OUT, 0)), out(new byte[512]), in(1));
        Kind k = readOnly.parse(r, ALL, true);
        assertAnswer(r, k, S_IOERR);
        VirtioBlkReq d = pop(out(concat(header(T_DISCARD, 0), segment(0, 8, 0))), in(1));
        assertAnswer(d, readOnly.parse(d, ALL, true), S_IOERR);
    }

    @Test
    void discardAndWriteZeroesWithoutTheirFeatureAreUnsupported() {
        VirtioBlkReq d = pop(out(concat(header(T_DISCARD, 0), segment(0, 8, 0))), in(1));
        assertAnswer(d, parser.parse(d, F_WRITE_ZEROES, true), S_UNSUPP);
        VirtioBlkReq z = pop(out(concat(header(T_WRITE_ZEROES, 0), segment(0, 8, 0))), in(1));
        assertAnswer(z, parser.parse(z, F_DISCARD, true), S_UNSUPP);
    }

    @Test
    void discardSegmentShapes() {
        VirtioBlkReq none = pop(out(header(T_DISCARD, 0)), in(1));
        assertAnswer(none, parse(none), S_UNSUPP);
        VirtioBlkReq partial = pop(out(concat(header(T_DISCARD, 0), new byte[8])), in(1));
        assertAnswer(partial, parse(partial), S_UNSUPP);
        VirtioBlkReq two = pop(out(concat(header(T_DISCARD, 0), concat(segment(0, 8, 0), segment(8, 8, 0)))),
                in(1));
        assertAnswer(two, parse(two), S_IOERR);
    }

    @Test
    void discardFlagsAndLimits() {
        VirtioBlkReq unmapOnDiscard = pop(out(concat(header(T_DISCARD, 0), segment(0, 8, WZ_FLAG_UNMAP))), in(1));
        assertAnswer(unmapOnDiscard, parse(unmapOnDiscard), S_UNSUPP);
        VirtioBlkReq unknownFlag = pop(out(concat(header(T_WRITE_ZEROES, 0), segment(0, 8, 2))), in(1));
        assertAnswer(unknownFlag, parse(unknownFlag), S_UNSUPP);
        VirtioBlkReq tooMany = pop(out(concat(header(T_DISCARD, 0), segment(0, MAX_DISCARD_SECTORS + 1L, 0))),
                in(1));
        assertAnswer(tooMany, parse(tooMany), S_IOERR);
        VirtioBlkReq past = pop(out(concat(header(T_WRITE_ZEROES, 0), segment(CAPACITY - 4, 8, 0))), in(1));
        assertAnswer(past, parse(past), S_IOERR);
    }

    @Test
    void zeroSectorDiscardIsDoneAtOnce() {
        VirtioBlkReq d = pop(out(concat(header(T_DISCARD, 0), segment(16, 0, 0))), in(1));
        assertAnswer(d, parse(d), S_OK);
        VirtioBlkReq z = pop(out(concat(header(T_WRITE_ZEROES, 0), segment(16, 0, WZ_FLAG_UNMAP))), in(1));
        assertAnswer(z, parse(z), S_OK);
    }

    // ------------------------------------------------------------------ submitted

    @Test
    void readSubmitsItsWritableBuffers() {
        Buf a = in(1024);
        Buf b = in(512);
        Buf status = in(1);
        VirtioBlkReq r = pop(out(header(T_IN, 8)), a, b, status);
        assertEquals(Kind.SUBMIT, parse(r));
        assertEquals(T_IN, r.type);
        assertEquals(8, r.sector);
        assertEquals(8 * SECTOR, r.offset);
        assertEquals(1536, r.bytes);
        assertEquals(1537, r.inLen, "data and status byte");
        assertEquals(0, r.flags);
        assertEquals(2, r.qiov.count());
        assertEquals(mem.translate(a.gpa(), 1024), r.qiov.address(0));
        assertEquals(mem.translate(b.gpa(), 512), r.qiov.address(1));
        assertEquals(mem.translate(status.gpa(), 1), r.statusAddr);
    }

    @Test
    void readWhoseStatusSharesTheLastBuffer() {
        Buf data = in(513);
        VirtioBlkReq r = pop(out(header(T_IN, 0)), data);
        assertEquals(Kind.SUBMIT, parse(r));
        assertEquals(512, r.bytes);
        assertEquals(mem.translate(data.gpa(), 513) + 512, r.statusAddr, "the status is the chain's last byte");
        assertEquals(1, r.qiov.count());
        assertEquals(512, r.qiov.length(0));
    }

    @Test
    void writeSubmitsTheBytesAfterTheHeader() {
        Buf hdrAndData = out(concat(header(T_OUT, CAPACITY - 2), new byte[1024]));
        VirtioBlkReq r = pop(hdrAndData, in(1));
        assertEquals(Kind.SUBMIT, parse(r));
        assertEquals(T_OUT, r.type);
        assertEquals((CAPACITY - 2) * SECTOR, r.offset);
        assertEquals(1024, r.bytes);
        assertEquals(1, r.inLen);
        assertEquals(1, r.qiov.count());
        assertEquals(mem.translate(hdrAndData.gpa(), 16) + 16, r.qiov.address(0), "data starts after the header");
        assertEquals(0, r.flags, "writeback: no FUA");
    }

    @Test
    void writeInWritethroughModeCarriesFua() {
        VirtioBlkReq r = pop(out(header(T_OUT, 0)), out(new byte[512]), in(1));
        assertEquals(Kind.SUBMIT, parser.parse(r, ALL, false));
        assertEquals(BlockFlags.FUA, r.flags);
    }

    @Test
    void headerSplitOverDescriptorsIsGathered() {
        byte[] h = header(T_OUT, 5);
        byte[] first = new byte[8];
        byte[] second = new byte[8];
        System.arraycopy(h, 0, first, 0, 8);
        System.arraycopy(h, 8, second, 0, 8);
        VirtioBlkReq r = pop(out(first), out(second), out(new byte[512]), in(1));
        assertEquals(Kind.SUBMIT, parse(r));
        assertEquals(T_OUT, r.type);
        assertEquals(5, r.sector);
        assertEquals(512, r.bytes);
    }

    @Test
    void flushSubmitsNoRange() {
        VirtioBlkReq r = pop(out(header(T_FLUSH, 77)), in(1));
        assertEquals(Kind.SUBMIT, parse(r));
        assertEquals(T_FLUSH, r.type);
        assertEquals(0, r.offset);
        assertEquals(0, r.bytes);
    }

    @Test
    void discardAndWriteZeroesSubmitTheirSegment() {
        VirtioBlkReq d = pop(out(concat(header(T_DISCARD, 0), segment(16, 8, 0))), in(1));
        assertEquals(Kind.SUBMIT, parse(d));
        assertEquals(16 * SECTOR, d.offset);
        assertEquals(8 * SECTOR, d.bytes);
        assertEquals(0, d.flags);
        VirtioBlkReq z = pop(out(header(T_WRITE_ZEROES, 0)), out(segment(CAPACITY - 8, 8, WZ_FLAG_UNMAP)), in(1));
        assertEquals(Kind.SUBMIT, parse(z));
        assertEquals((CAPACITY - 8) * SECTOR, z.offset);
        assertEquals(8 * SECTOR, z.bytes);
        assertEquals(BlockFlags.MAY_UNMAP, z.flags);
        VirtioBlkReq plain = pop(out(concat(header(T_WRITE_ZEROES, 0), segment(0, 1, 0))), in(1));
        assertEquals(Kind.SUBMIT, parse(plain));
        assertEquals(0, plain.flags, "no UNMAP flag: the zeroes are written");
    }
}
