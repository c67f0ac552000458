package io.vblk.guest;

import com.sun.jna.Memory;

import io.vblk.aio.EventNotifier;
import io.vblk.aio.LibC;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;

/**
 * The machine's MSI delivery, as KVM's irqchip does it. Two paths reach a
 * vCPU: an <em>irqfd</em> — an eventfd wired to a vCPU while it is assigned,
 * so an IOThread interrupts the guest without the main loop — and direct
 * injection by the main loop. An MSI's address carries the destination vCPU
 * (APIC id in bits 12..19) and its data the vector. Once an irqfd is
 * released, signalling it no longer reaches the guest: that is how a
 * notification sent after the dataplane tore its guest notifiers down is lost
 * (seed 001).
 */
public final class InterruptController implements AutoCloseable {
    private static final long KICK = -1L;
    private static final int MAX_EVENTS = 16;

    /** One vCPU's local interrupt state: its epoll set of irqfds, a kick eventfd, directly injected vectors. */
    final class Lapic implements InterruptLine, AutoCloseable {
        final int id;
        private final int epfd;
        private final EventNotifier kick = new EventNotifier();
        private final ConcurrentLinkedQueue<Integer> injected = new ConcurrentLinkedQueue<>();
        /** Wired irqfds by fd: the eventfd and the vector it raises. */
        private final Map<Integer, Wiring> wired = new ConcurrentHashMap<>();
        private final Memory events = new Memory((long) MAX_EVENTS * LibC.EPOLL_EVENT_SIZE);
        private final ByteBuffer buf = events.getByteBuffer(0, events.size()).order(ByteOrder.LITTLE_ENDIAN);
        private final Memory ctl = new Memory(LibC.EPOLL_EVENT_SIZE);
        private final ConcurrentLinkedQueue<Integer> fired = new ConcurrentLinkedQueue<>();
        volatile boolean stopRequested;
        private volatile boolean pauseRequested;
        /** Non-zero when a stop or pause is requested: the one volatile read a RAM access pays. */
        private volatile int attention;
        private volatile boolean paused;
        private volatile Runnable onParked = () -> { };
        final String name;

        Lapic(int id) {
            this.id = id;
            this.name = "vcpu" + id;
            epfd = LibC.check(LibC.epoll_create1(LibC.EPOLL_CLOEXEC), "epoll_create1");
            ctl(LibC.EPOLL_CTL_ADD, kick.fd(), KICK);
        }

        private synchronized void ctl(int op, int fd, long data) {
            ctl.setInt(0, LibC.EPOLLIN);
            ctl.setLong(4, data);
            LibC.check(LibC.epoll_ctl(epfd, op, fd, ctl), "epoll_ctl");
        }

        void wire(int vector, EventNotifier irqfd) {
            wired.put(irqfd.fd(), new Wiring(irqfd, vector));
            ctl(LibC.EPOLL_CTL_ADD, irqfd.fd(), ((long) vector << 32) | irqfd.fd());
        }

        /**
         * Deassigns an irqfd. Under KVM a signal is injected into the APIC the
         * moment the eventfd is written, so one made before the deassign is never
         * lost: a signal this vCPU has not read yet is injected now.
         */
        void unwire(EventNotifier irqfd) {
            Wiring w = wired.remove(irqfd.fd());
            if (w != null) {
                ctl(LibC.EPOLL_CTL_DEL, irqfd.fd(), 0);
                if (irqfd.testAndClear()) {
                    inject(w.vector());
                }
            }
        }

        void inject(int vector) {
            injected.add(vector);
            kick.set();
        }

        void setOnParked(Runnable r) {
            onParked = r;
        }

        /** Kicks the vCPU out of its program: its next checkpoint throws. */
        void requestStop() {
            stopRequested = true;
            attention = 1;
            synchronized (this) {
                notifyAll();
            }
            kick.set();
        }

        void clearStop() {
            stopRequested = false;
            attention = pauseRequested ? 1 : 0;
        }

        /** Parks the vCPU at its next checkpoint, program kept, until {@link #resume()} (QEMU's stop). */
        void requestPause() {
            pauseRequested = true;
            attention = 1;
            kick.set();
        }

        synchronized void resume() {
            pauseRequested = false;
            attention = stopRequested ? 1 : 0;
            notifyAll();
        }

        boolean isPaused() {
            return paused;
        }

        /** A point where guest code may be stopped or paused: every hardware access and wait. */
        void checkpoint() {
            if (attention == 0) {
                return;
            }
            if (stopRequested) {
                throw new VcpuStoppedException(name);
            }
            if (pauseRequested) {
                parkWhilePaused();
            }
        }

        private synchronized void parkWhilePaused() {
            paused = true;
            onParked.run();
            boolean interrupted = false;
            try {
                while (pauseRequested && !stopRequested) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        interrupted = true;
                    }
                }
            } finally {
                paused = false;
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
            if (stopRequested) {
                throw new VcpuStoppedException(name);
            }
        }

        @Override
        public int poll() {
            return take(0);
        }

        @Override
        public int await(long timeoutNs) {
            return take(timeoutNs);
        }

        private int take(long timeoutNs) {
            for (;;) {
                checkpoint();
                Integer v = injected.poll();
                if (v == null) {
                    v = fired.poll();
                }
                if (v != null) {
                    return v;
                }
                int ms = timeoutNs < 0 ? -1 : (int) Math.min(Integer.MAX_VALUE, (timeoutNs + 999_999) / 1_000_000);
                int n = LibC.epoll_wait(epfd, events, MAX_EVENTS, ms);
                if (n < 0) {
                    int err = LibC.errno();
                    if (err == LibC.EINTR) {
                        continue;
                    }
                    throw new io.vblk.aio.NativeException("epoll_wait(" + name + ")", err);
                }
                for (int i = 0; i < n; i++) {
                    long data = buf.getLong(i * LibC.EPOLL_EVENT_SIZE + 4);
                    if (data == KICK) {
                        kick.testAndClear();
                        continue;
                    }
                    Wiring w = wired.get((int) data);
                    if (w != null && w.irqfd().testAndClear()) {
                        fired.add(w.vector());
                    }
                }
                if (n == 0 && timeoutNs >= 0) {
                    checkpoint();
                    return -1;
                }
            }
        }

        @Override
        public void close() {
            kick.close();
            LibC.close(epfd);
        }
    }

    /** An irqfd wired to a vCPU and the vector it raises there. */
    private record Wiring(EventNotifier irqfd, int vector) {
    }

    private final Lapic[] lapics;

    public InterruptController(int vcpus) {
        lapics = new Lapic[vcpus];
        for (int i = 0; i < vcpus; i++) {
            lapics[i] = new Lapic(i);
        }
    }

    Lapic lapic(int vcpu) {
        return lapics[vcpu];
    }

    private Lapic route(long msiAddress) {
        int dest = (int) ((msiAddress >>> 12) & 0xff);
        return lapics[Math.min(dest, lapics.length - 1)];
    }

    /** Direct injection (the main loop's {@code msix_notify} path). */
    public void deliver(long msiAddress, int data) {
        route(msiAddress).inject(data);
    }

    /** KVM_IRQFD assign: signalling {@code irqfd} now interrupts the MSI's destination with its data. */
    public void assignIrqfd(EventNotifier irqfd, long msiAddress, int data) {
        route(msiAddress).wire(data, irqfd);
    }

    /** KVM_IRQFD deassign: the eventfd no longer reaches the guest. */
    public void releaseIrqfd(EventNotifier irqfd) {
        for (Lapic l : lapics) {
            l.unwire(irqfd);
        }
    }

    /** Wired irqfds and pending vectors per vCPU, for the watchdog's dump. */
    public String describe() {
        StringBuilder sb = new StringBuilder();
        for (Lapic l : lapics) {
            sb.append("  lapic ").append(l.name).append(": irqfds ").append(l.wired.keySet()).append(", injected ")
                    .append(l.injected).append(", fired ").append(l.fired).append(l.paused ? ", paused" : "")
                    .append(l.stopRequested ? ", stop requested" : "").append('\n');
        }
        return sb.toString();
    }

    @Override
    public void close() {
        for (Lapic l : lapics) {
            l.close();
        }
    }
}
