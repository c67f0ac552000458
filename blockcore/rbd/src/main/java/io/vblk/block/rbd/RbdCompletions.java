package io.vblk.block.rbd;

import com.sun.jna.CallbackReference;
import com.sun.jna.CallbackThreadInitializer;
import com.sun.jna.Native;
import com.sun.jna.Pointer;

import java.util.ArrayDeque;
import java.util.concurrent.atomic.AtomicReferenceArray;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The one librbd completion callback of the process and the table that maps
 * its {@code void *arg} back to a request: the Java side of QEMU's
 * {@code qemu_rbd_completion_cb}. librbd calls the callback on its own
 * threads; it reads the result, releases the librbd completion and hands the
 * request to its driver, which schedules a bottom half in the node's home
 * context ({@code aio_bh_schedule_oneshot} in QEMU; here a BH made once per
 * context). Nothing here touches a node.
 *
 * <p>JNA pitfalls handled once: the callback object is a static final
 * field, so it is never collected while librbd holds its address; its
 * function pointer is resolved once and passed as a plain {@code long}; and
 * a {@link CallbackThreadInitializer} keeps librbd's finisher thread attached
 * to the JVM (as a daemon) instead of attaching and detaching it per I/O.
 * Request ids index a table of chunks that only grows, so the callback finds
 * its request without a lock and without allocating.
 */
final class RbdCompletions {
    private static final Logger LOG = LoggerFactory.getLogger(RbdCompletions.class);
    private static final int CHUNK_BITS = 10;
    private static final int CHUNK = 1 << CHUNK_BITS;
    private static final int MAX_CHUNKS = 1 << 12; // 4M concurrent requests: far beyond any queue depth

    private static final AtomicReferenceArray<AtomicReferenceArray<RbdRequest>> TABLE =
            new AtomicReferenceArray<>(MAX_CHUNKS);
    /** Ids of requests whose driver closed; taken before new ids are minted. Guarded by itself. */
    private static final ArrayDeque<Integer> FREE_IDS = new ArrayDeque<>();
    private static int nextId;

    /** Strongly reachable for the life of the process: librbd may call it at any time. */
    static final LibRbd.CompletionCallback CALLBACK = new Callback();
    /** {@link #CALLBACK}'s native address, as {@code rbd_aio_create_completion} takes it. */
    static final long CALLBACK_FN;

    static {
        Native.setCallbackThreadInitializer(CALLBACK,
                new CallbackThreadInitializer(true, false, "librbd-completion"));
        CALLBACK_FN = Pointer.nativeValue(CallbackReference.getFunctionPointer(CALLBACK));
    }

    private RbdCompletions() {
    }

    /** Gives {@code r} an id the callback can find it by (control path: a pool growing). */
    static int register(RbdRequest r) {
        int id;
        synchronized (FREE_IDS) {
            Integer free = FREE_IDS.poll();
            if (free != null) {
                id = free;
            } else {
                if (nextId == MAX_CHUNKS * CHUNK) {
                    throw new IllegalStateException("more than " + nextId + " RBD requests in existence");
                }
                id = nextId++;
            }
        }
        AtomicReferenceArray<RbdRequest> chunk = TABLE.get(id >>> CHUNK_BITS);
        if (chunk == null) {
            TABLE.compareAndSet(id >>> CHUNK_BITS, null, new AtomicReferenceArray<>(CHUNK));
            chunk = TABLE.get(id >>> CHUNK_BITS);
        }
        chunk.set(id & (CHUNK - 1), r);
        return id;
    }

    /** Forgets a request of a closed driver; its id is reused. */
    static void unregister(int id) {
        TABLE.get(id >>> CHUNK_BITS).set(id & (CHUNK - 1), null);
        synchronized (FREE_IDS) {
            FREE_IDS.add(id);
        }
    }

    static RbdRequest lookup(long id) {
        AtomicReferenceArray<RbdRequest> chunk = TABLE.get((int) (id >>> CHUNK_BITS));
        return chunk == null ? null : chunk.get((int) (id & (CHUNK - 1)));
    }

    /** librbd's thread: result, release, hand-off. Must not throw into native code. */
    private static final class Callback implements LibRbd.CompletionCallback {
        @Override
        public void invoke(long completion, long arg) {
            try {
                long ret = LibRbd.rbd_aio_get_return_value(completion);
                LibRbd.rbd_aio_release(completion);
                RbdRequest r = lookup(arg);
                if (r == null) {
                    LOG.error("librbd completed unknown request id {} (ret {}): dropped", arg, ret);
                    return;
                }
                r.completedOnLibrbdThread(ret);
            } catch (Throwable t) {
                LOG.error("librbd completion callback failed for request id {}", arg, t);
            }
        }
    }
}
