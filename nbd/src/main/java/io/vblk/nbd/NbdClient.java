package io.vblk.nbd;

import static io.vblk.nbd.NbdProto.*;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioHandler;
import io.vblk.aio.AioTimer;
import io.vblk.aio.BottomHalf;
import io.vblk.aio.Errno;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockFlags;
import io.vblk.block.IoVec;

import java.util.ArrayDeque;
import java.util.concurrent.TimeUnit;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One NBD connection: QEMU's {@code NBDClient} (nbd/server.c). It negotiates
 * in the main loop, then moves to the export node's AioContext, where a
 * non-blocking socket is watched by an fd handler (QEMU's
 * {@code nbd_client_receive_next_request} / {@code nbd_trip}). Every request
 * read is submitted at once — as many in flight as the client sends, up to
 * {@link #MAX_IN_FLIGHT} requests or {@link #MAX_IN_FLIGHT_BYTES} bytes, past
 * which reading pauses until one completes — and each reply is queued when its
 * request completes, so replies go out in completion order, as the protocol
 * allows. Replies completed in one loop iteration leave in one {@code sendmsg}
 * from a bottom half.
 *
 * <p>Buffers are Netty's pooled direct buffers, requests are pooled per
 * connection: a request costs no allocation once the pools are warm.
 *
 * <p>A client's fault ends only its own connection: bad options and commands
 * get the spec's errors; what makes the stream untrustworthy (a wrong magic,
 * a write payload over the maximum) closes it with a log line. Buffers the
 * block layer may still be writing to are released only when their request
 * completes, so a client that vanishes mid-request leaves nothing dangling.
 */
final class NbdClient {
    private static final Logger LOG = LoggerFactory.getLogger(NbdClient.class);
    static final ByteBufAllocator ALLOC = PooledByteBufAllocator.DEFAULT;
    /** Requests in flight per connection before reading pauses (QEMU's MAX_NBD_REQUESTS is 16). */
    static final int MAX_IN_FLIGHT = 64;
    /** Payload bytes in flight per connection before reading pauses. */
    static final long MAX_IN_FLIGHT_BYTES = 128L << 20;
    /** Replies the client has not read yet before reading pauses (a client that only sends). */
    static final long MAX_QUEUED_REPLY_BYTES = 64L << 20;
    /** QEMU's default {@code handshake-max-seconds}. */
    static final long HANDSHAKE_SECONDS = 10;
    private static final int IN_BUF = 256 * 1024;
    private static final int READ = 1;
    private static final int WRITE = 2;

    private enum State { NEGOTIATING, MOVING, TRANSMISSION, CLOSED }

    private final NbdServer server;
    private final int fd;
    private final String peer;
    private AioContext ctx;
    private AioHandler handler;
    private int armed;
    private State state = State.NEGOTIATING;
    private final ByteBuf in = ALLOC.directBuffer(IN_BUF, IN_BUF);
    private final NbdSendQueue out = new NbdSendQueue(ALLOC);
    private NbdNegotiation neg;
    private ByteBuf negOut;
    private AioTimer handshakeTimer;
    private BottomHalf flushBh;
    /** Set in the main loop at NBD_OPT_GO / EXPORT_NAME, before the move. */
    volatile NbdExport export;
    private BlockBackend blk;
    private boolean structured;
    private boolean metaAllocation;

    private boolean processing;
    private boolean maskedWhileProcessing;
    private boolean writeBlocked;
    private boolean stalled;
    private boolean disconnecting;
    private String closeWhenAttached;
    private boolean finalized;
    private boolean warnedBadRequest;

    private Req payloadReq;
    private long payloadLeft;
    private long discardLeft;
    private int inFlight;
    private long inFlightBytes;
    private final ArrayDeque<Req> pool = new ArrayDeque<>();
    private ByteBuf statusScratch;

    NbdClient(NbdServer server, int fd, String peer, NbdNegotiation.Targets targets, AioContext main) {
        this.server = server;
        this.fd = fd;
        this.peer = peer;
        this.ctx = main;
        this.neg = new NbdNegotiation(targets, peer);
        this.negOut = ALLOC.directBuffer(4096);
    }

    String peer() {
        return peer;
    }

    /** Sends the greeting and starts watching the socket; main loop. */
    void start() {
        flushBh = ctx.bhNew("nbd-flush:" + peer, this::flushNow);
        long limit = server.handshakeNanos();
        handshakeTimer = ctx.timerNew("nbd-handshake:" + peer,
                () -> close("the handshake did not end within " + TimeUnit.NANOSECONDS.toMillis(limit) + " ms", true));
        handshakeTimer.modInNs(limit);
        negOut.clear();
        neg.greeting(negOut);
        out.copy(negOut);
        updateHandler();
        flushNow();
    }

    // ------------------------------------------------------------------ socket events

    private void updateHandler() {
        int want = 0;
        if ((state == State.NEGOTIATING || state == State.TRANSMISSION) && !stalled && !disconnecting
                && !maskedWhileProcessing) {
            want |= READ;
        }
        if (writeBlocked && state != State.CLOSED && state != State.MOVING) {
            want |= WRITE;
        }
        if (want == armed) {
            return;
        }
        armed = want;
        if (want == 0) {
            if (handler != null) {
                handler.remove();
                handler = null;
            }
            return;
        }
        AioHandler.Builder b = new AioHandler.Builder("nbd-client:" + peer, fd);
        if ((want & READ) != 0) {
            b.onRead(this::onReadable);
        }
        if ((want & WRITE) != 0) {
            b.onWrite(this::flushNow);
        }
        handler = ctx.setFdHandler(b);
    }

    /** Reads what the socket has and handles every complete message; a few rounds per wake-up, for fairness. */
    private void onReadable() {
        if (processing) {
            // a nested poll (qcow2 block status loading an L2 table) must not start on the next request
            maskedWhileProcessing = true;
            updateHandler();
            return;
        }
        for (int round = 0; round < 8 && canRead(); round++) {
            long n;
            int want;
            if (payloadReq != null && !in.isReadable()) {
                ByteBuf d = payloadReq.data; // a large write's payload goes straight into its buffer
                want = (int) Math.min(payloadLeft, d.writableBytes());
                n = SocketCalls.recv(fd, d.memoryAddress() + d.writerIndex(), want, 0);
                if (n > 0) {
                    d.writerIndex(d.writerIndex() + (int) n);
                    payloadLeft -= n;
                }
            } else {
                if (in.writableBytes() < 64 * 1024) {
                    in.discardReadBytes();
                }
                want = in.writableBytes();
                n = SocketCalls.recv(fd, in.memoryAddress() + in.writerIndex(), want, 0);
                if (n > 0) {
                    in.writerIndex(in.writerIndex() + (int) n);
                }
            }
            if (n > 0) {
                process();
                if (n < want) {
                    break; // the socket is drained
                }
                continue;
            }
            if (n == 0) {
                boolean mid = payloadReq != null || discardLeft > 0 || in.isReadable();
                close(state == State.NEGOTIATING ? "the client left during the handshake"
                        : mid ? "the client vanished in the middle of a request" : "the client closed the connection",
                        mid);
                return;
            }
            int err = SocketCalls.errno();
            if (err == SocketCalls.EINTR) {
                continue;
            }
            if (err != SocketCalls.EAGAIN) {
                close("receive failed: " + Errno.name(err), err != SocketCalls.ECONNRESET);
            }
            return;
        }
    }

    private boolean canRead() {
        return (state == State.NEGOTIATING || state == State.TRANSMISSION) && !stalled && !disconnecting;
    }

    /** Handles every complete message in the input buffer. */
    private void process() {
        if (processing) {
            return;
        }
        processing = true;
        try {
            if (state == State.NEGOTIATING) {
                negotiate();
            } else if (state == State.TRANSMISSION) {
                transmit();
            }
        } finally {
            processing = false;
        }
        if (maskedWhileProcessing) {
            maskedWhileProcessing = false;
            updateHandler();
        }
        maybeFinalize();
    }

    // ------------------------------------------------------------------ handshake

    private void negotiate() {
        negOut.clear();
        NbdNegotiation.Kind k = neg.step(in, negOut);
        out.copy(negOut);
        if (k == NbdNegotiation.Kind.CLOSE) {
            out.flush(fd); // best effort: an ABORT's ACK
            close(neg.closeReason(), neg.closeIsWarning());
        } else if (k == NbdNegotiation.Kind.TRANSMISSION) {
            startTransmission((NbdExport) neg.chosen());
        } else {
            scheduleFlush();
        }
    }

    /** NBD_OPT_GO or EXPORT_NAME chose {@code e}: join it, then move to its context (main loop). */
    private void startTransmission(NbdExport e) {
        handshakeTimer.del();
        structured = neg.structured();
        metaAllocation = neg.metaAllocation();
        neg = null;
        negOut.release();
        negOut = null;
        export = e;
        blk = e.backend();
        server.joined(this, e);
        state = State.MOVING;
        int rc = out.flush(fd);
        if (rc < 0) {
            close("sending the handshake's end failed: " + Errno.name(-rc), false);
            return;
        }
        writeBlocked = rc == 1;
        armed = 0;
        if (handler != null) {
            handler.remove();
            handler = null;
        }
        flushBh.delete();
        flushBh = null;
        AioContext target = e.context();
        LOG.info("nbd {}: serving export '{}' in {}{}", peer, e.name(), target.name(),
                structured ? " (structured replies" + (metaAllocation ? ", base:allocation)" : ")") : "");
        target.bhScheduleOneshot("nbd-client-attach:" + peer, () -> attached(target));
    }

    /** First callback in the export's context: watch the socket here and handle what already arrived. */
    private void attached(AioContext target) {
        ctx = target;
        flushBh = ctx.bhNew("nbd-flush:" + peer, this::flushNow);
        state = State.TRANSMISSION;
        statusScratch = ALLOC.directBuffer(4096);
        if (closeWhenAttached != null) {
            close(closeWhenAttached, false);
            return;
        }
        updateHandler();
        process();
        flushNow();
    }

    // ------------------------------------------------------------------ transmission

    private void transmit() {
        while (state == State.TRANSMISSION) {
            if (payloadReq != null) {
                int n = (int) Math.min(payloadLeft, in.readableBytes());
                if (n > 0) {
                    payloadReq.data.writeBytes(in, n);
                    payloadLeft -= n;
                }
                if (payloadLeft > 0) {
                    return;
                }
                Req r = payloadReq;
                payloadReq = null;
                submitWrite(r);
                continue;
            }
            if (discardLeft > 0) {
                int n = (int) Math.min(discardLeft, in.readableBytes());
                in.skipBytes(n);
                discardLeft -= n;
                if (discardLeft > 0) {
                    return;
                }
            }
            if (disconnecting) {
                return;
            }
            if (inFlight >= MAX_IN_FLIGHT || inFlightBytes >= MAX_IN_FLIGHT_BYTES
                    || out.pendingBytes() >= MAX_QUEUED_REPLY_BYTES) {
                stalled = true; // resumed by flushNow once a request completed or the client read its replies
                updateHandler();
                return;
            }
            if (in.readableBytes() < REQUEST_SIZE) {
                return;
            }
            int magic = in.readInt();
            if (magic != REQUEST_MAGIC) {
                close("bad request magic 0x" + Integer.toHexString(magic), true);
                return;
            }
            int flags = in.readUnsignedShort();
            int type = in.readUnsignedShort();
            long handle = in.readLong();
            long offset = in.readLong();
            long length = in.readUnsignedInt();
            request(type, flags, handle, offset, length);
        }
    }

    private void request(int type, int flags, long handle, long offset, long length) {
        if (LOG.isTraceEnabled()) {
            LOG.trace("nbd_co_receive_request {}: {} flags 0x{} handle {} offset {} length {}", peer, commandName(type),
                    Integer.toHexString(flags), handle, offset, length);
        }
        if (type == CMD_WRITE && length > MAX_PAYLOAD) {
            // its payload follows and cannot be trusted to be skipped: QEMU drops such a client too
            close("NBD_CMD_WRITE of " + length + " bytes exceeds the maximum payload " + MAX_PAYLOAD, true);
            return;
        }
        if (type == CMD_DISC) {
            disconnecting = true;
            updateHandler();
            maybeEndDisc();
            return;
        }
        Req r = take();
        r.handle = handle;
        r.type = type;
        r.flags = flags;
        r.offset = offset;
        r.length = length;
        int err = validate(r);
        if (err != 0) {
            badRequest(r, err);
            if (type == CMD_WRITE) {
                discardLeft = length; // the payload follows: skip it, the stream stays in step
            }
            return;
        }
        switch (type) {
            case CMD_READ: {
                r.data = ALLOC.directBuffer((int) length);
                r.iov.reset();
                if (length > 0) {
                    r.iov.add(r.data.memoryAddress(), (int) length);
                }
                started(r);
                blk.preadv(offset, length, r.iov, 0, r);
                break;
            }
            case CMD_WRITE:
                r.data = ALLOC.directBuffer((int) length);
                payloadReq = r;
                payloadLeft = length;
                break;
            case CMD_FLUSH:
                started(r);
                blk.flush(r);
                break;
            case CMD_TRIM:
                started(r);
                blk.pdiscard(offset, length, r);
                break;
            case CMD_WRITE_ZEROES: {
                int bf = (flags & CMD_FLAG_NO_HOLE) != 0 ? 0 : BlockFlags.MAY_UNMAP;
                if ((flags & CMD_FLAG_FAST_ZERO) != 0) {
                    bf |= BlockFlags.NO_FALLBACK;
                }
                started(r);
                blk.pwriteZeroes(offset, length, bf, r);
                break;
            }
            case CMD_BLOCK_STATUS:
                blockStatus(r);
                break;
            default:
                throw new IllegalStateException("validated unknown command " + type);
        }
    }

    /**
     * The spec's error for a request the export cannot serve, or 0: QEMU's
     * checks in {@code nbd_co_receive_request} (flags per command, range,
     * read-only, payload size, negotiated features).
     */
    private int validate(Req r) {
        int allowed;
        switch (r.type) {
            case CMD_READ:
                allowed = structured ? CMD_FLAG_DF : 0;
                break;
            case CMD_WRITE:
            case CMD_TRIM:
                allowed = CMD_FLAG_FUA;
                break;
            case CMD_WRITE_ZEROES:
                allowed = CMD_FLAG_FUA | CMD_FLAG_NO_HOLE | CMD_FLAG_FAST_ZERO;
                break;
            case CMD_BLOCK_STATUS:
                allowed = CMD_FLAG_REQ_ONE;
                break;
            case CMD_FLUSH:
                allowed = 0;
                break;
            default:
                return EINVAL; // unknown commands, and CACHE, which is not advertised
        }
        if ((r.flags & ~allowed) != 0) {
            return EINVAL;
        }
        boolean writes = r.type == CMD_WRITE || r.type == CMD_TRIM || r.type == CMD_WRITE_ZEROES;
        if (writes && !export.isWritable()) {
            return EPERM;
        }
        if (r.type == CMD_READ && r.length > MAX_PAYLOAD) {
            return EINVAL;
        }
        if (r.type == CMD_BLOCK_STATUS && (!structured || !metaAllocation || r.length == 0)) {
            return EINVAL;
        }
        if (r.type != CMD_FLUSH) {
            long size = blk.length();
            if (r.offset < 0 || r.offset > size || r.length > size - r.offset) {
                return r.type == CMD_WRITE || r.type == CMD_WRITE_ZEROES ? ENOSPC : EINVAL;
            }
        }
        return 0;
    }

    private void badRequest(Req r, int err) {
        if (!warnedBadRequest) {
            warnedBadRequest = true;
            LOG.warn("nbd {}: refused {} flags 0x{} offset {} length {} with error {} (further refusals logged at debug)",
                    peer, commandName(r.type), Integer.toHexString(r.flags), r.offset, r.length, err);
        } else {
            LOG.debug("nbd {}: refused {} offset {} length {} with error {}", peer, commandName(r.type), r.offset,
                    r.length, err);
        }
        if (structured && (r.type == CMD_READ || r.type == CMD_BLOCK_STATUS)) {
            errorChunk(r.handle, err);
        } else {
            simpleReply(r.handle, err);
        }
        recycle(r);
        scheduleFlush();
    }

    private void submitWrite(Req r) {
        r.iov.reset();
        if (r.length > 0) {
            r.iov.add(r.data.memoryAddress(), (int) r.length);
        }
        started(r);
        blk.pwritev(r.offset, r.length, r.iov, (r.flags & CMD_FLAG_FUA) != 0 ? BlockFlags.FUA : 0, r);
    }

    private void started(Req r) {
        inFlight++;
        inFlightBytes += r.data == null ? 0 : r.length;
    }

    /** BLOCK_STATUS is answered at once: the node's status is synchronous (QEMU's nbd_co_send_block_status). */
    private void blockStatus(Req r) {
        ByteBuf s = statusScratch;
        s.clear();
        int max = (r.flags & CMD_FLAG_REQ_ONE) != 0 ? 1 : NbdBlockStatus.MAX_EXTENTS;
        s.ensureWritable(8 * Math.min(max, 64));
        try {
            NbdBlockStatus.extents(export.node(), r.offset, r.length, max, s);
        } catch (RuntimeException e) {
            LOG.warn("nbd {}: block status at offset {} failed: {}", peer, r.offset, e.getMessage());
            errorChunk(r.handle, EIO);
            recycle(r);
            scheduleFlush();
            return;
        }
        if (state != State.TRANSMISSION) {
            recycle(r); // closed during a nested poll
            return;
        }
        int n = s.readableBytes();
        ByteBuf o = out.small(CHUNK_HEADER_SIZE + 4);
        chunkHeader(o, REPLY_FLAG_DONE, REPLY_TYPE_BLOCK_STATUS, r.handle, 4 + n);
        o.writeInt(META_ID_BASE_ALLOCATION);
        out.wrote(CHUNK_HEADER_SIZE + 4);
        out.payload(s.retainedSlice());
        statusScratch = ALLOC.directBuffer(4096); // the slice keeps the old one until it is sent
        s.release();
        recycle(r);
        scheduleFlush();
    }

    // ------------------------------------------------------------------ completions and replies

    /** A request finished in the block layer (the node's context). */
    private void completed(Req r, int ret) {
        inFlight--;
        inFlightBytes -= r.data == null ? 0 : r.length;
        if (state == State.CLOSED) {
            recycle(r);
            maybeFinalize();
            return;
        }
        if (ret == -Errno.ENOTSUP && r.type == CMD_TRIM) {
            ret = 0; // discard is advisory
        }
        boolean fua = (r.flags & CMD_FLAG_FUA) != 0 && (r.type == CMD_TRIM || r.type == CMD_WRITE_ZEROES);
        if (ret >= 0 && fua && !r.flushed) {
            r.flushed = true; // the block layer has no FUA for these: a flush makes them stable before the reply
            started(r);
            blk.flush(r);
            return;
        }
        int err = ret < 0 ? errnoToNbd(ret) : 0;
        if (LOG.isTraceEnabled()) {
            LOG.trace("nbd_co_send_reply {}: {} handle {} error {}", peer, commandName(r.type), r.handle, err);
        }
        if (ret < 0) {
            LOG.debug("nbd {}: {} offset {} length {} failed: {}", peer, commandName(r.type), r.offset, r.length,
                    Errno.name(-ret));
        }
        if (r.type == CMD_READ) {
            if (err != 0) {
                if (structured) {
                    errorChunk(r.handle, err);
                } else {
                    simpleReply(r.handle, err);
                }
            } else if (structured) {
                if (r.length == 0) {
                    ByteBuf o = out.small(CHUNK_HEADER_SIZE);
                    chunkHeader(o, REPLY_FLAG_DONE, REPLY_TYPE_NONE, r.handle, 0);
                    out.wrote(CHUNK_HEADER_SIZE);
                } else {
                    ByteBuf o = out.small(CHUNK_HEADER_SIZE + 8);
                    chunkHeader(o, REPLY_FLAG_DONE, REPLY_TYPE_OFFSET_DATA, r.handle, 8 + r.length);
                    o.writeLong(r.offset);
                    out.wrote(CHUNK_HEADER_SIZE + 8);
                }
                sendPayload(r);
            } else {
                simpleReply(r.handle, 0);
                sendPayload(r);
            }
        } else {
            simpleReply(r.handle, err);
        }
        recycle(r);
        scheduleFlush();
    }

    private void sendPayload(Req r) {
        r.data.writerIndex((int) r.length);
        out.payload(r.data);
        r.data = null;
    }

    private void simpleReply(long handle, int err) {
        ByteBuf o = out.small(SIMPLE_REPLY_SIZE);
        o.writeInt(SIMPLE_REPLY_MAGIC).writeInt(err).writeLong(handle);
        out.wrote(SIMPLE_REPLY_SIZE);
    }

    private void errorChunk(long handle, int err) {
        ByteBuf o = out.small(CHUNK_HEADER_SIZE + 6);
        chunkHeader(o, REPLY_FLAG_DONE, REPLY_TYPE_ERROR, handle, 6);
        o.writeInt(err).writeShort(0);
        out.wrote(CHUNK_HEADER_SIZE + 6);
    }

    private static void chunkHeader(ByteBuf o, int flags, int type, long handle, long length) {
        o.writeInt(STRUCTURED_REPLY_MAGIC).writeShort(flags).writeShort(type).writeLong(handle).writeInt((int) length);
    }

    private void scheduleFlush() {
        if (flushBh != null) {
            flushBh.schedule();
        }
    }

    /** Sends what is queued; re-arms reading once the connection is below its limits again. */
    private void flushNow() {
        if (state == State.CLOSED || state == State.MOVING) {
            return;
        }
        int rc = out.flush(fd);
        if (rc < 0) {
            close("send failed: " + Errno.name(-rc), -rc != SocketCalls.EPIPE && -rc != SocketCalls.ECONNRESET);
            return;
        }
        boolean blocked = rc == 1;
        boolean changed = blocked != writeBlocked;
        writeBlocked = blocked;
        if (stalled && inFlight < MAX_IN_FLIGHT && inFlightBytes < MAX_IN_FLIGHT_BYTES
                && out.pendingBytes() < MAX_QUEUED_REPLY_BYTES) {
            stalled = false;
            changed = true;
        }
        if (changed) {
            updateHandler();
        }
        if (!stalled && state == State.TRANSMISSION && in.readableBytes() >= REQUEST_SIZE && !processing) {
            process(); // requests that arrived while reading was paused are already in the buffer
        }
        maybeEndDisc();
    }

    private void maybeEndDisc() {
        if (disconnecting && state == State.TRANSMISSION && inFlight == 0 && out.isEmpty()) {
            close("the client disconnected (NBD_CMD_DISC)", false);
        }
    }

    // ------------------------------------------------------------------ requests

    private Req take() {
        Req r = pool.pollFirst();
        return r != null ? r : new Req();
    }

    private void recycle(Req r) {
        if (r.data != null) {
            r.data.release();
            r.data = null;
        }
        r.flushed = false;
        pool.addFirst(r);
    }

    /** One request: pooled per connection, its own completion (QEMU's {@code NBDRequestData}). */
    private final class Req implements BlockCompletion {
        long handle;
        int type;
        int flags;
        long offset;
        long length;
        ByteBuf data;
        final IoVec iov = new IoVec(1);
        boolean flushed;

        @Override
        public void complete(int ret) {
            completed(this, ret);
        }
    }

    // ------------------------------------------------------------------ ending

    /** Asks the client to end, from the main loop (export removal, server stop). */
    void requestClose(String why) {
        NbdExport e = export;
        AioContext c = e != null ? e.context() : server.mainContext();
        c.bhScheduleOneshot("nbd-client-close:" + peer, () -> close(why, false));
    }

    /** Ends the connection now (home context); requests in flight finish first, then the client is forgotten. */
    void close(String why, boolean warn) {
        if (state == State.CLOSED) {
            return;
        }
        if (state == State.MOVING) {
            closeWhenAttached = why;
            return;
        }
        if (warn) {
            LOG.warn("nbd {}: connection ends: {}", peer, why);
        } else {
            LOG.info("nbd {}: connection ends: {}", peer, why);
        }
        state = State.CLOSED;
        if (handler != null) {
            handler.remove();
            handler = null;
        }
        armed = 0;
        if (handshakeTimer != null) {
            handshakeTimer.del();
        }
        SocketCalls.shutdown(fd, SocketCalls.SHUT_RDWR);
        SocketCalls.close(fd);
        out.clear();
        if (payloadReq != null) {
            recycle(payloadReq); // never submitted: its payload did not arrive
            payloadReq = null;
        }
        maybeFinalize();
    }

    private void maybeFinalize() {
        if (state != State.CLOSED || inFlight > 0 || processing || finalized) {
            return;
        }
        finalized = true;
        in.release();
        if (negOut != null) {
            negOut.release();
            negOut = null;
        }
        if (statusScratch != null) {
            statusScratch.release();
            statusScratch = null;
        }
        if (flushBh != null) {
            flushBh.delete();
            flushBh = null;
        }
        pool.clear();
        server.gone(this);
    }

    @Override
    public String toString() {
        return "NBD client " + peer + " (" + state + (export != null ? ", export '" + export.name() + "'" : "")
                + ", in flight " + inFlight + ")";
    }
}
