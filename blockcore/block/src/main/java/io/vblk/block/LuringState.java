package io.vblk.block;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;

import io.netty.util.internal.PlatformDependent;
import io.vblk.aio.AioContext;
import io.vblk.aio.AioHandler;
import io.vblk.aio.BottomHalf;
import io.vblk.aio.Errno;
import io.vblk.aio.LibC;

import java.lang.invoke.VarHandle;
import java.util.ArrayDeque;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicBoolean;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The io_uring of one {@link AioContext}: QEMU's {@code LuringState}
 * (block/io_uring.c). Every {@code file} node in the context with
 * {@code aio=io_uring} submits here; the ring's completion eventfd
 * ({@code IORING_REGISTER_EVENTFD}) is an fd handler of the same context, so
 * completions are dispatched by the event loop that submitted them
 * (DESIGN rule 10). The ring is created for the first node that needs it in a
 * context and destroyed when the last one leaves (a context move, a close).
 *
 * <p><b>Batching</b> (QEMU's plug/unplug): {@link #submit} only writes an SQE
 * and, for the first one of a batch, schedules the {@code luring-unplug} BH;
 * that BH publishes the SQ tail and makes one {@code io_uring_enter} for all
 * requests the loop queued meanwhile (a virtqueue's whole batch). A full SQ
 * is submitted at once. At most {@code cq_entries} operations are in flight,
 * so the CQ cannot overflow; more wait in a queue (QEMU's {@code io_q}).
 *
 * <p><b>Memory ordering.</b> The rings are shared with the kernel, which
 * reads the SQ tail with {@code smp_load_acquire} and writes the CQ tail with
 * {@code smp_store_release}. The mapped memory is accessed with plain loads
 * and stores through {@link PlatformDependent} (Unsafe, compiled inline; a
 * JNA {@code Pointer} access would be one JNI call per field), ordered by
 * explicit fences, which in the Java memory model order plain accesses too:
 * <ul>
 * <li>submission: SQE fields written, then {@link VarHandle#releaseFence()},
 *     then the tail store: the kernel that sees the new tail sees the SQEs
 *     (liburing's {@code io_uring_smp_store_release} on the tail);</li>
 * <li>completion: tail load, then {@link VarHandle#acquireFence()}, then the
 *     CQE loads: nothing of a CQE is read before the tail that published it;
 *     after the CQE is read, {@link VarHandle#releaseFence()} and the head
 *     store, so the kernel does not reuse a CQE slot still being read.</li>
 * </ul>
 * Only threads that own the context (its home thread, or a holder of its
 * lock) touch the ring, so the Java side needs no further synchronisation.
 *
 * <p>Fixed files: a sparse table ({@code IORING_REGISTER_FILES} of -1
 * entries) is registered at setup; each driver takes a slot
 * ({@code IORING_REGISTER_FILES_UPDATE}) and its SQEs use
 * {@code IOSQE_FIXED_FILE}, saving the kernel an fd lookup per request.
 */
final class LuringState {
    private static final Logger LOG = LoggerFactory.getLogger(LuringState.class);
    private static final Map<AioContext, LuringState> RINGS = new ConcurrentHashMap<>();
    private static final AtomicBoolean FALLBACK_LOGGED = new AtomicBoolean();
    /** QEMU's MAX_ENTRIES. */
    static final int ENTRIES = 128;
    private static final int FIXED_FILES = 64;
    private static volatile String unavailable;
    private static volatile boolean probed;

    /** One operation on the ring: writes its SQE, gets its result. */
    interface Op {
        /** Fills the zeroed SQE at {@code sqe} (user_data is set by the ring). */
        void prep(long sqe);

        /** The CQE's result (bytes or -errno), in the ring's context. */
        void onCqe(int res);
    }

    private final AioContext ctx;
    private final int ringFd;
    private final Pointer ring;
    private final long ringSize;
    private final Pointer cqRing; // == ring with IORING_FEAT_SINGLE_MMAP
    private final long cqRingSize;
    private final Pointer sqesMap;
    private final long sqesSize;
    private final long sqTail;
    private final int sqMask;
    private final int sqEntries;
    private final long sqes;
    private final long cqHead;
    private final long cqTail;
    private final int cqMask;
    private final long cqes;
    private final int efd;
    private final AioHandler handler;
    private final BottomHalf unplugBh;
    private final boolean fallocateOp;
    private final int[] fileTable;
    private final Memory scratch = new Memory(16);

    private int sqLocalTail;
    private int cqLocalHead;
    /** SQEs written but not yet passed to io_uring_enter. */
    private int pending;
    private boolean plugged;
    private final Op[] slots;
    private final int[] freeSlots;
    private int freeTop;
    private final ArrayDeque<Op> waiting = new ArrayDeque<>();
    private int refs;
    private boolean closed;
    /** Depth of {@link #reap()} on the stack: a completion that closes the last node defers the teardown. */
    private int reaping;
    private boolean teardownDeferred;
    /** Unregisters {@link #contextFreed()} once the ring went before its context. */
    private final AutoCloseable freeHook;

    // statistics (racy reads)
    private long enters;
    private long submitted;

    private LuringState(AioContext ctx, int ringFd, Memory params) {
        this.ctx = ctx;
        this.ringFd = ringFd;
        int features = params.getInt(Uring.P_FEATURES);
        int sqOff = Uring.P_SQ_OFF;
        int cqOff = Uring.P_CQ_OFF;
        sqEntries = params.getInt(Uring.P_SQ_ENTRIES);
        int cqEntries = params.getInt(Uring.P_CQ_ENTRIES);
        long sqSize = params.getInt(sqOff + Uring.SQ_ARRAY) + 4L * sqEntries;
        long cqSize = params.getInt(cqOff + Uring.CQ_CQES) + (long) Uring.CQE_SIZE * cqEntries;
        boolean single = (features & Uring.IORING_FEAT_SINGLE_MMAP) != 0;
        ringSize = single ? Math.max(sqSize, cqSize) : sqSize;
        ring = map(ringFd, ringSize, Uring.IORING_OFF_SQ_RING, "SQ ring");
        if (single) {
            cqRing = ring;
            cqRingSize = 0;
        } else {
            cqRingSize = cqSize;
            cqRing = map(ringFd, cqSize, Uring.IORING_OFF_CQ_RING, "CQ ring");
        }
        sqesSize = (long) Uring.SQE_SIZE * sqEntries;
        sqesMap = map(ringFd, sqesSize, Uring.IORING_OFF_SQES, "SQE array");
        long sq = Pointer.nativeValue(ring);
        long cq = Pointer.nativeValue(cqRing);
        sqTail = sq + params.getInt(sqOff + Uring.SQ_TAIL);
        sqMask = PlatformDependent.getInt(sq + params.getInt(sqOff + Uring.SQ_RING_MASK));
        long sqArray = sq + params.getInt(sqOff + Uring.SQ_ARRAY);
        for (int i = 0; i < sqEntries; i++) {
            PlatformDependent.putInt(sqArray + 4L * i, i); // identity: SQE i is array slot i
        }
        sqes = Pointer.nativeValue(sqesMap);
        cqHead = cq + params.getInt(cqOff + Uring.CQ_HEAD);
        cqTail = cq + params.getInt(cqOff + Uring.CQ_TAIL);
        cqMask = PlatformDependent.getInt(cq + params.getInt(cqOff + Uring.CQ_RING_MASK));
        cqes = cq + params.getInt(cqOff + Uring.CQ_CQES);
        sqLocalTail = PlatformDependent.getInt(sqTail);
        cqLocalHead = PlatformDependent.getInt(cqHead);
        slots = new Op[cqEntries];
        freeSlots = new int[cqEntries];
        for (int i = cqEntries - 1; i >= 0; i--) {
            freeSlots[freeTop++] = i;
        }
        fallocateOp = probeOp(Uring.IORING_OP_FALLOCATE);
        fileTable = registerFileTable();
        efd = LibC.check(LibC.eventfd(0, LibC.EFD_NONBLOCK | LibC.EFD_CLOEXEC), "eventfd");
        scratch.setInt(0, efd);
        if (Uring.register(ringFd, Uring.IORING_REGISTER_EVENTFD, scratch, 1) < 0) {
            int err = Native.getLastError();
            LibC.close(efd);
            throw new BlockException("io_uring_register(EVENTFD): " + Errno.name(err));
        }
        unplugBh = ctx.bhNew("luring-unplug", this::unplug);
        handler = ctx.setFdHandler(new AioHandler.Builder("luring-completion", efd)
                .onRead(this::onEventfd)
                .poll(this::completionsReady, this::reap));
        freeHook = ctx.addFreeHook(this::contextFreed); // last: nothing can fail after it
        LOG.debug("luring_init ctx={} sq={} cq={} fallocate={} fixedFiles={}", ctx.name(), sqEntries, cqEntries,
                fallocateOp, fileTable != null);
    }

    private static Pointer map(int fd, long size, long off, String what) {
        Pointer p = Uring.mmap(null, size, Uring.PROT_READ | Uring.PROT_WRITE, Uring.MAP_SHARED | Uring.MAP_POPULATE,
                fd, off);
        if (Pointer.nativeValue(p) == -1L) {
            throw new BlockException("mmap of the io_uring " + what + ": " + Errno.name(Native.getLastError()));
        }
        return p;
    }

    /**
     * Why io_uring cannot be used on this host (ENOSYS: kernel without it;
     * EPERM: a seccomp profile or {@code kernel.io_uring_disabled}), or null.
     * Probed once per JVM.
     */
    static String unavailableReason() {
        if (!probed) {
            synchronized (LuringState.class) {
                if (!probed) {
                    Memory p = new Memory(Uring.PARAMS_SIZE);
                    p.clear();
                    int fd = Uring.setup(1, p);
                    if (fd < 0) {
                        int err = Native.getLastError();
                        unavailable = "io_uring_setup failed: " + Errno.name(err);
                    } else {
                        LibC.close(fd);
                    }
                    probed = true;
                }
            }
        }
        return unavailable;
    }

    /**
     * Test seam: makes {@link #unavailableReason()} answer {@code reason}
     * (as a host whose seccomp profile refuses io_uring_setup would) until
     * closed; the fallback's log line is armed again.
     */
    static AutoCloseable refuseForTest(String reason) {
        unavailableReason();
        String before = unavailable;
        unavailable = reason;
        FALLBACK_LOGGED.set(false);
        return () -> {
            unavailable = before;
            FALLBACK_LOGGED.set(false);
        };
    }

    /** Whether the fallback to threads has been logged (once per JVM). */
    static boolean fallbackLogged() {
        return FALLBACK_LOGGED.get();
    }

    /**
     * The ring of {@code ctx}, created on first use; null (logged once per JVM)
     * when io_uring is unavailable, so the caller falls back to the thread
     * pool. The caller owns {@code ctx} (home thread or its lock) and calls
     * {@link #release()} once per acquire.
     */
    static LuringState acquire(AioContext ctx) {
        String why = unavailableReason();
        if (why != null) {
            if (FALLBACK_LOGGED.compareAndSet(false, true)) {
                LOG.warn("aio=io_uring unavailable ({}): the file driver uses aio=threads", why);
            }
            return null;
        }
        LuringState s = RINGS.get(ctx);
        if (s == null) {
            try {
                s = create(ctx);
            } catch (BlockException e) {
                if (FALLBACK_LOGGED.compareAndSet(false, true)) {
                    LOG.warn("io_uring for AioContext '{}' failed ({}): the file driver uses aio=threads", ctx.name(),
                            e.getMessage());
                }
                return null;
            }
            RINGS.put(ctx, s);
        }
        s.refs++;
        return s;
    }

    private static LuringState create(AioContext ctx) {
        Memory p = new Memory(Uring.PARAMS_SIZE);
        p.clear();
        p.setInt(Uring.P_FLAGS, Uring.IORING_SETUP_SUBMIT_ALL);
        int fd = Uring.setup(ENTRIES, p);
        if (fd < 0 && Native.getLastError() == Errno.EINVAL) {
            p.clear(); // a kernel before 5.18: no SUBMIT_ALL
            fd = Uring.setup(ENTRIES, p);
        }
        if (fd < 0) {
            throw new BlockException("io_uring_setup: " + Errno.name(Native.getLastError()));
        }
        try {
            return new LuringState(ctx, fd, p);
        } catch (RuntimeException e) {
            LibC.close(fd); // the kernel unmaps what was mapped when the ring goes
            throw e;
        }
    }

    private boolean probeOp(int op) {
        int n = 256;
        Memory probe = new Memory(16 + 8L * n);
        probe.clear();
        if (Uring.register(ringFd, Uring.IORING_REGISTER_PROBE, probe, n) < 0) {
            return false;
        }
        int last = probe.getByte(0) & 0xff;
        return op <= last && (probe.getShort(16 + 8L * op + 2) & Uring.IO_URING_OP_SUPPORTED) != 0;
    }

    private int[] registerFileTable() {
        Memory fds = new Memory(4L * FIXED_FILES);
        for (int i = 0; i < FIXED_FILES; i++) {
            fds.setInt(4L * i, -1);
        }
        if (Uring.register(ringFd, Uring.IORING_REGISTER_FILES, fds, FIXED_FILES) < 0) {
            LOG.debug("io_uring fixed files unavailable: {}", Errno.name(Native.getLastError()));
            return null;
        }
        int[] t = new int[FIXED_FILES];
        java.util.Arrays.fill(t, -1);
        return t;
    }

    AioContext context() {
        return ctx;
    }

    /** Whether the kernel has IORING_OP_FALLOCATE (5.6+). */
    boolean hasFallocate() {
        return fallocateOp;
    }

    /** Registers {@code fd} as a fixed file; its slot, or -1 (the driver then uses the plain fd). */
    int registerFile(int fd) {
        if (fileTable == null || closed) {
            return -1;
        }
        for (int i = 0; i < fileTable.length; i++) {
            if (fileTable[i] < 0) {
                if (updateFile(i, fd) < 0) {
                    return -1;
                }
                fileTable[i] = fd;
                return i;
            }
        }
        return -1;
    }

    void unregisterFile(int slot) {
        if (slot >= 0 && fileTable != null && !closed && fileTable[slot] >= 0) {
            updateFile(slot, -1);
            fileTable[slot] = -1;
        }
    }

    /** {@code struct io_uring_files_update {u32 offset; u32 resv; u64 fds;}} for one slot. */
    private int updateFile(int slot, int fd) {
        Memory m = new Memory(20);
        m.setInt(0, slot);
        m.setInt(4, 0);
        m.setLong(8, Pointer.nativeValue(m) + 16);
        m.setInt(16, fd);
        int r = Uring.register(ringFd, Uring.IORING_REGISTER_FILES_UPDATE, m, 1);
        if (r < 0) {
            LOG.debug("io_uring_register(FILES_UPDATE, slot {}): {}", slot, Errno.name(Native.getLastError()));
        }
        return r;
    }

    /**
     * Queues {@code op}: its SQE is written now and submitted by this
     * iteration's unplug (or at once when the SQ is full). Owner of the context only.
     */
    void submit(Op op) {
        if (closed) {
            throw new IllegalStateException("io_uring of AioContext '" + ctx.name() + "' is closed");
        }
        if (freeTop == 0 || !waiting.isEmpty()) {
            waiting.addLast(op); // as many in flight as the CQ holds: the rest waits for completions
            return;
        }
        if (pending == sqEntries) {
            flush();
            if (pending == sqEntries) {
                waiting.addLast(op);
                return;
            }
        }
        push(op);
        if (!plugged) {
            plugged = true;
            unplugBh.schedule();
        }
    }

    private void push(Op op) {
        int slot = freeSlots[--freeTop];
        slots[slot] = op;
        long sqe = sqes + (long) (sqLocalTail & sqMask) * Uring.SQE_SIZE;
        for (int i = 0; i < Uring.SQE_SIZE; i += 8) {
            PlatformDependent.putLong(sqe + i, 0L);
        }
        op.prep(sqe);
        PlatformDependent.putLong(sqe + Uring.SQE_USER_DATA, slot);
        sqLocalTail++;
        pending++;
    }

    /** The unplug BH: one io_uring_enter for the iteration's batch. */
    private void unplug() {
        plugged = false;
        flush();
        refill();
    }

    /** Moves waiting operations into free slots; schedules their unplug. */
    private void refill() {
        while (freeTop > 0 && !waiting.isEmpty() && pending < sqEntries) {
            push(waiting.pollFirst());
        }
        if (pending > 0 && !plugged) {
            plugged = true;
            unplugBh.schedule();
        }
    }

    /** Publishes the SQ tail (release) and enters the kernel for every pending SQE. */
    private void flush() {
        if (pending == 0) {
            return;
        }
        VarHandle.releaseFence(); // SQE stores before the tail store
        PlatformDependent.putInt(sqTail, sqLocalTail);
        while (pending > 0) {
            int r = Uring.enter(ringFd, pending, 0, 0);
            enters++;
            if (r < 0) {
                int err = Native.getLastError();
                if (err == Errno.EINTR) {
                    continue;
                }
                // EAGAIN/EBUSY: the kernel is short of resources; the SQEs stay
                // published and go with the next enter (the next completion or submit).
                LOG.warn("io_uring_enter on AioContext '{}': {} ({} SQEs pending)", ctx.name(), Errno.name(err), pending);
                return;
            }
            if (r == 0) {
                return;
            }
            pending -= r;
            submitted += r;
        }
    }

    /** ioPoll: a completion is ready, seen without a syscall. */
    private boolean completionsReady() {
        int tail = PlatformDependent.getInt(cqTail);
        VarHandle.acquireFence();
        return tail != cqLocalHead;
    }

    private void onEventfd() {
        LibC.eventfd_read(efd, scratch); // EAGAIN when polling already consumed the work: fine
        reap();
    }

    /**
     * QEMU's {@code luring_process_completions}: completes every CQE, freeing
     * its slot first (publishing the CQ head) so a completion may submit
     * again; then moves waiting operations into the freed slots.
     */
    private void reap() {
        reaping++;
        try {
            reapAll();
        } finally {
            if (--reaping == 0 && teardownDeferred) {
                teardownDeferred = false;
                teardown(); // the last node left from inside a completion: unmap only now
            }
        }
    }

    private void reapAll() {
        for (;;) {
            int tail = PlatformDependent.getInt(cqTail);
            VarHandle.acquireFence(); // CQE loads after the tail load
            if (tail == cqLocalHead) {
                break;
            }
            while (cqLocalHead != tail) {
                long cqe = cqes + (long) (cqLocalHead & cqMask) * Uring.CQE_SIZE;
                int slot = (int) PlatformDependent.getLong(cqe + Uring.CQE_USER_DATA);
                int res = PlatformDependent.getInt(cqe + Uring.CQE_RES);
                cqLocalHead++;
                VarHandle.releaseFence(); // CQE read before the kernel may reuse it
                PlatformDependent.putInt(cqHead, cqLocalHead);
                Op op = slots[slot];
                slots[slot] = null;
                freeSlots[freeTop++] = slot;
                try {
                    op.onCqe(res);
                } catch (RuntimeException e) {
                    LOG.error("AioContext '{}': io_uring completion of {} threw", ctx.name(), op, e);
                }
            }
            refill();
        }
    }

    /** Operations submitted and not yet completed (including those waiting for a slot). */
    int inFlight() {
        return slots.length - freeTop + waiting.size();
    }

    /**
     * Drops one reference; the last one waits for whatever is still on the
     * ring (nothing, when the caller drained), then unregisters and unmaps.
     */
    void release() {
        if (closed || --refs > 0) {
            return; // closed: its context went first (contextFreed)
        }
        RINGS.remove(ctx, this);
        if (reaping > 0) {
            teardownDeferred = true; // called from a completion: reap() still reads the rings
            return;
        }
        teardown();
    }

    /**
     * The context is being freed while nodes still use the ring (a machine
     * closed without closing its block graph): QEMU's {@code luring_cleanup}
     * from {@code aio_ctx_finalize}. No loop will dispatch a completion any
     * more, so nothing is waited for; what is still in flight is reported.
     */
    private void contextFreed() {
        if (closed) {
            return;
        }
        RINGS.remove(ctx, this);
        if (inFlight() > 0) {
            LOG.warn("io_uring of AioContext '{}' freed with {} operations in flight", ctx.name(), inFlight());
        }
        unmapAndClose();
    }

    private void teardown() {
        while (inFlight() > 0) {
            flush();
            int r = Uring.enter(ringFd, 0, 1, Uring.IORING_ENTER_GETEVENTS);
            if (r < 0 && Native.getLastError() != Errno.EINTR) {
                LOG.error("io_uring of AioContext '{}': waiting for {} operations failed: {}", ctx.name(), inFlight(),
                        Errno.name(Native.getLastError()));
                break;
            }
            reap();
        }
        unmapAndClose();
    }

    private void unmapAndClose() {
        closed = true;
        unplugBh.delete();
        try {
            freeHook.close();
        } catch (Exception e) {
            LOG.debug("removing the free hook failed", e);
        }
        if (!ctx.isClosed()) {
            handler.remove();
        }
        Uring.munmap(sqesMap, sqesSize);
        if (cqRing != ring) {
            Uring.munmap(cqRing, cqRingSize);
        }
        Uring.munmap(ring, ringSize);
        LibC.close(ringFd);
        LibC.close(efd);
        LOG.debug("luring_cleanup ctx={} enters={} submitted={}", ctx.name(), enters, submitted);
    }

    /** The ring of {@code ctx} if one exists (tests, dumps). */
    static LuringState of(AioContext ctx) {
        return RINGS.get(ctx);
    }

    long enters() {
        return enters;
    }

    long submitted() {
        return submitted;
    }

    @Override
    public String toString() {
        return "LuringState(" + ctx.name() + ", fd=" + ringFd + ", inFlight=" + inFlight() + ", enters=" + enters + ")";
    }
}
