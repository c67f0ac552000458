package io.vblk.guest;

import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.function.Function;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A virtual CPU: a thread that runs guest programs (the firmware, a driver's
 * workload) against its {@link MachinePlatform}. Stopping it kicks it out of
 * guest mode: its next hardware access or interrupt wait throws
 * {@link VcpuStoppedException}, the program unwinds and the vCPU parks until
 * it is given the next program (QEMU's {@code pause_all_vcpus}).
 */
public final class Vcpu implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Vcpu.class);

    private final int id;
    private final MachinePlatform platform;
    private final InterruptController.Lapic lapic;
    private final Thread thread;
    private final BlockingQueue<Task<?>> tasks = new LinkedBlockingQueue<>();
    private final Object lock = new Object();
    private volatile Task<?> current;
    private boolean parking;
    private static final long CLOSE_BOUND_NS = 10_000_000_000L;
    private volatile boolean closed;

    /** A guest program and the future of its result. */
    private static final class Task<T> {
        final String name;
        final Function<MachinePlatform, T> program;
        final CompletableFuture<T> result = new CompletableFuture<>();

        Task(String name, Function<MachinePlatform, T> program) {
            this.name = name;
            this.program = program;
        }

        void run(MachinePlatform p) {
            try {
                result.complete(program.apply(p));
            } catch (Throwable t) {
                result.completeExceptionally(t);
            }
        }
    }

    private final Runnable onParked;

    Vcpu(int id, MachinePlatform platform, InterruptController.Lapic lapic, Runnable onParked) {
        this.id = id;
        this.platform = platform;
        this.lapic = lapic;
        this.onParked = onParked;
        lapic.setOnParked(onParked);
        this.thread = new Thread(this::loop, "vcpu" + id);
        thread.setDaemon(true);
        thread.start();
    }

    public int id() {
        return id;
    }

    public Thread thread() {
        return thread;
    }

    public InterruptLine interrupts() {
        return lapic;
    }

    public MachinePlatform platform() {
        return platform;
    }

    /** Runs {@code program} on this vCPU after whatever it runs now; the future completes with its result. */
    public <T> CompletableFuture<T> run(String name, Function<MachinePlatform, T> program) {
        Task<T> t = new Task<>(name, program);
        synchronized (lock) {
            parking = false;
            tasks.add(t);
        }
        return t.result;
    }

    public boolean isRunningGuest() {
        return current != null;
    }

    public String currentProgram() {
        Task<?> t = current;
        return t == null ? "(parked)" : t.name;
    }

    private void loop() {
        while (!closed) {
            Task<?> t;
            try {
                t = tasks.take();
            } catch (InterruptedException e) {
                continue;
            }
            synchronized (lock) {
                if (t.program == null) {
                    continue; // the close marker
                }
                if (parking) {
                    t.result.completeExceptionally(new VcpuStoppedException(name()));
                    continue;
                }
                current = t;
                lapic.clearStop();
            }
            try {
                t.run(platform);
            } finally {
                synchronized (lock) {
                    current = null;
                    lock.notifyAll();
                }
                onParked.run();
            }
            t.result.whenComplete((r, e) -> {
                if (e != null && !(e instanceof VcpuStoppedException)) {
                    LOG.debug("vcpu{}: program '{}' ended with {}", id, t.name, e.toString());
                }
            });
        }
    }

    /**
     * Kicks the vCPU out of its current program and waits until it parked;
     * queued programs are dropped. Returns once the vCPU runs no guest code,
     * and none starts until the next {@link #run}.
     */
    public void stop() {
        synchronized (lock) {
            parking = true;
            for (Task<?> t : tasks) {
                t.result.completeExceptionally(new VcpuStoppedException(name()));
            }
            tasks.clear();
            if (current != null) {
                lapic.requestStop();
            }
            boolean interrupted = false;
            while (current != null) {
                try {
                    lock.wait();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * Kicks the vCPU out of its program without waiting (the main loop then
     * polls until {@link #isQuiescent()}); queued programs are dropped.
     */
    public void requestStop() {
        synchronized (lock) {
            parking = true;
            for (Task<?> t : tasks) {
                t.result.completeExceptionally(new VcpuStoppedException(name()));
            }
            tasks.clear();
            if (current != null) {
                lapic.requestStop();
            }
        }
    }

    public void requestPause() {
        lapic.requestPause();
    }

    public void resume() {
        lapic.resume();
    }

    /** Runs no guest code: no program, or parked by a pause. */
    public boolean isQuiescent() {
        return current == null || lapic.isPaused();
    }

    String name() {
        return "vcpu" + id;
    }

    public String describe() {
        StringBuilder sb = new StringBuilder("vcpu" + id + " thread " + thread.getState() + " running "
                + currentProgram() + "\n");
        for (StackTraceElement e : thread.getStackTrace()) {
            sb.append("    at ").append(e).append('\n');
        }
        return sb.toString();
    }

    /** Stops the vCPU and waits for its thread to end, so a closed machine leaves no vCPU thread behind. */
    @Override
    public void close() {
        closed = true;
        stop();
        tasks.add(new Task<Void>("close", null));
        if (Thread.currentThread() == thread) {
            return;
        }
        boolean interrupted = false;
        long deadline = System.nanoTime() + CLOSE_BOUND_NS;
        while (thread.isAlive() && System.nanoTime() < deadline) {
            try {
                thread.join(Math.max(1, (deadline - System.nanoTime()) / 1_000_000));
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (thread.isAlive()) {
            LOG.warn("{}: thread did not end within {} s of close:\n{}", name(), CLOSE_BOUND_NS / 1_000_000_000L,
                    describe());
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
