package io.vblk.aio;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A store-buffer model of weak memory ordering for the few shared fields
 * whose ordering a historic QEMU fix was about: {@code ctx->notify_me} (bug
 * 006), {@code global_aio_wait.num_waiters} and the {@code done} flag of
 * {@code aio_wait_bh_oneshot} (bug 007), and the device's kick-suppression
 * field in a virtqueue (bug 019, {@link #storeLater}). The JVM keeps volatile accesses
 * sequentially consistent, so it cannot show what an ARM host did to QEMU;
 * this model can, deterministically.
 *
 * <p>A store to a modelled {@link Field} goes into the storing thread's
 * buffer: that thread reads its own store back at once (store forwarding),
 * every other thread keeps reading the old value. The buffer drains, in
 * order, only when its thread passes a full barrier: a {@link #fence} at a
 * site where QEMU has {@code smp_mb()}, a system call (epoll_wait, an
 * eventfd read or write: {@link #syscall}), or at the latest the end of its
 * current {@code aio_poll} iteration ({@link #endOfPoll}). Atomic read-modify-writes are modelled
 * as buffered stores too, since C11 orders a seq-cst RMW only against other
 * seq-cst accesses, not against the relaxed loads that follow it (the
 * pattern both fixes name). Nothing else is modelled: every other field keeps
 * Java's volatile semantics.
 *
 * <p>A machine gets a model only if a scenario asks for one
 * ({@link MainLoop#MainLoop(String, LegacySwitches, VisibilityModel)}); each
 * user holds it in a final field and takes its ordinary path when it is null,
 * so the model costs nothing elsewhere. It behaves the same whatever
 * {@link LegacyBehavior} is on: a switch removes a fence, the model only
 * makes the missing fence observable. Every load that missed another
 * thread's buffered store is recorded ({@link #staleLoads()}), which names
 * the lost handshake in a scenario's verdict and in the watchdog's dump.
 */
public final class VisibilityModel {
    /** A modelled shared int: the value every thread sees once the stores to it have drained. */
    public static final class Field {
        private final String name;
        private final AtomicInteger visible;

        private Field(String name, int initial) {
            this.name = name;
            this.visible = new AtomicInteger(initial);
        }

        public String name() {
            return name;
        }

        /** The drained value: what a thread without a buffered store to this field reads. */
        public int visible() {
            return visible.get();
        }

        @Override
        public String toString() {
            return name;
        }
    }

    /**
     * One buffered store: an add (an RMW such as notify_me += 2), a plain set,
     * or a store to memory the model does not hold ({@code memory}: guest RAM,
     * written when the buffer drains; {@code field} is null then).
     */
    private record Pending(Field field, boolean add, int value, String what, Runnable memory) {
        Pending(Field field, boolean add, int value) {
            this(field, add, value, null, null);
        }

        int applyTo(int v) {
            return add ? v + value : value;
        }

        @Override
        public String toString() {
            if (memory != null) {
                return what;
            }
            return field.name + (add ? (value >= 0 ? " += " + value : " -= " + -value) : " = " + value);
        }
    }

    /** Per-thread buffers; every operation of the model holds its monitor, so a load sees one consistent state. */
    private final Map<Thread, List<Pending>> buffers = new HashMap<>();
    private final List<String> staleLoads = new CopyOnWriteArrayList<>();

    /** A new modelled field. */
    public Field field(String name, int initial) {
        return new Field(name, initial);
    }

    /** Buffers {@code field += delta} in the calling thread. */
    public synchronized void add(Field field, int delta) {
        buffers.computeIfAbsent(Thread.currentThread(), k -> new ArrayList<>()).add(new Pending(field, true, delta));
    }

    /** Buffers {@code field = value} in the calling thread. */
    public synchronized void set(Field field, int value) {
        buffers.computeIfAbsent(Thread.currentThread(), k -> new ArrayList<>()).add(new Pending(field, false, value));
    }

    /**
     * Buffers a store to memory outside the model (a field of a guest's
     * virtqueue, say) in the calling thread: {@code store} writes it when the
     * buffer drains, so until then every other thread reads the old value
     * from that memory. The storing thread must not read it back.
     */
    public synchronized void storeLater(String what, Runnable store) {
        buffers.computeIfAbsent(Thread.currentThread(), k -> new ArrayList<>())
                .add(new Pending(null, false, 0, what, store));
    }

    /**
     * The calling thread's view of {@code field}: the drained value with its
     * own buffered stores applied. A load whose value another thread's
     * buffered stores would change is recorded with {@code where}.
     */
    public synchronized int load(Field field, String where) {
        Thread me = Thread.currentThread();
        int visible = field.visible.get();
        int v = applyAll(buffers.get(me), field, visible);
        for (Map.Entry<Thread, List<Pending>> e : buffers.entrySet()) {
            if (e.getKey() == me) {
                continue;
            }
            int theirs = applyAll(e.getValue(), field, visible);
            if (theirs != visible) {
                List<Pending> ops = new ArrayList<>();
                for (Pending p : e.getValue()) {
                    if (p.field == field) {
                        ops.add(p);
                    }
                }
                staleLoads.add("'" + me.getName() + "' read " + field.name + "=" + v + " in " + where + " while '"
                        + e.getKey().getName() + "' still had " + ops + " in its store buffer");
            }
        }
        return v;
    }

    private static int applyAll(List<Pending> buffer, Field field, int v) {
        if (buffer != null) {
            for (Pending p : buffer) {
                if (p.field == field) {
                    v = p.applyTo(v);
                }
            }
        }
        return v;
    }

    /** A full barrier in the calling thread ({@code smp_mb()} at {@code where}): its buffered stores drain. */
    public void fence(String where) {
        drain(Thread.currentThread());
    }

    /** A system call in the calling thread (epoll_wait, an eventfd write): the kernel entry drains its buffer. */
    public void syscall() {
        drain(Thread.currentThread());
    }

    /**
     * The end of one {@code aio_poll} iteration in the calling thread: its
     * buffer drains. A store buffer drains within a bounded time, and draining
     * early is always a valid execution; the windows the fixes closed all lie
     * inside one iteration (raise notify_me, read, sleep), so bounding a
     * store's delay to one iteration keeps them and no more.
     */
    public void endOfPoll() {
        drain(Thread.currentThread());
    }

    private synchronized void drain(Thread t) {
        List<Pending> mine = buffers.get(t);
        if (mine == null) {
            return;
        }
        for (Pending p : mine) {
            if (p.memory != null) {
                p.memory.run();
            } else {
                p.field.visible.updateAndGet(p::applyTo);
            }
        }
        mine.clear();
    }

    /** Loads that missed another thread's buffered store, oldest first. */
    public List<String> staleLoads() {
        return List.copyOf(staleLoads);
    }

    /** What {@code t} has buffered now ("[vq1 avail_event = 1]"), for a scenario's verdict. */
    public synchronized String buffered(Thread t) {
        List<Pending> l = buffers.get(t);
        return l == null ? "[]" : l.toString();
    }

    /** The buffers and stale loads, for the watchdog's dump. */
    public synchronized String describe() {
        StringBuilder sb = new StringBuilder("--- visibility model (store buffers) ---\n");
        buffers.forEach((t, l) -> {
            if (!l.isEmpty()) {
                sb.append("  '").append(t.getName()).append("' buffers ").append(l).append('\n');
            }
        });
        for (String s : staleLoads) {
            sb.append("  stale load: ").append(s).append('\n');
        }
        return sb.toString();
    }
}
