package io.vblk.aio;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Worker threads for blocking work (file I/O, fsync): QEMU's
 * {@code ThreadPool} (util/thread-pool.c). A job submitted from a context
 * completes in that context: the worker pushes it on the context's lock-free
 * completion list and schedules one BH, which runs every finished job in
 * submission order. Workers start on demand up to a bound and end after
 * ten idle seconds, as QEMU's do.
 */
public final class ThreadPool {
    private static final Logger LOG = LoggerFactory.getLogger(ThreadPool.class);
    private static final long IDLE_NS = TimeUnit.SECONDS.toNanos(10);

    private final String name;
    private final int maxWorkers;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition workAvailable = lock.newCondition();
    private ThreadPoolJob head;
    private ThreadPoolJob tail;
    private int queued;
    private int workers;
    private int idle;
    private int nextWorkerId;
    private boolean shutdown;

    public ThreadPool(String name, int maxWorkers) {
        if (maxWorkers < 1) {
            throw new IllegalArgumentException("a thread pool needs at least one worker");
        }
        this.name = name;
        this.maxWorkers = maxWorkers;
    }

    /** Queues {@code job}; its completion runs in {@code ctx}. */
    public void submit(AioContext ctx, ThreadPoolJob job) {
        job.ctx = ctx;
        job.next = null;
        lock.lock();
        try {
            if (shutdown) {
                throw new IllegalStateException("thread pool '" + name + "' is shut down");
            }
            if (tail == null) {
                head = job;
            } else {
                tail.next = job;
            }
            tail = job;
            queued++;
            if (idle > 0) {
                workAvailable.signal();
            } else if (workers < maxWorkers) {
                workers++;
                Thread t = new Thread(this::runWorker, name + "-" + nextWorkerId++);
                t.setDaemon(true);
                t.start();
            }
        } finally {
            lock.unlock();
        }
    }

    /** A worker never dies silently: whatever escapes is logged and the worker count stays true. */
    private void runWorker() {
        boolean normalExit = false;
        try {
            workerLoop();
            normalExit = true;
        } catch (Throwable t) {
            LOG.error("thread pool '{}': worker {} died", name, Thread.currentThread().getName(), t);
        } finally {
            if (!normalExit) {
                lock.lock();
                try {
                    workers--;
                } finally {
                    lock.unlock();
                }
            }
        }
    }

    private void workerLoop() {
        for (;;) {
            ThreadPoolJob job;
            lock.lock();
            try {
                long idleLeft = IDLE_NS;
                while (head == null && !shutdown) {
                    if (idleLeft <= 0) {
                        workers--;
                        return;
                    }
                    idle++;
                    try {
                        idleLeft = workAvailable.awaitNanos(idleLeft);
                    } catch (InterruptedException e) {
                        idleLeft = 0;
                    } finally {
                        idle--;
                    }
                }
                if (head == null) {
                    workers--;
                    return;
                }
                job = head;
                head = job.next;
                if (head == null) {
                    tail = null;
                }
                queued--;
                job.next = null;
            } finally {
                lock.unlock();
            }
            int ret;
            try {
                ret = job.work();
            } catch (RuntimeException | Error e) {
                LOG.error("thread pool '{}': job {} threw", name, job, e);
                ret = -Errno.EIO;
            }
            job.ret = ret;
            job.ctx.poolCompleter.push(job);
        }
    }

    /** Stops the workers: each ends once the queue is empty (an idle one at once). Jobs queued still run. */
    public void shutdown() {
        lock.lock();
        try {
            shutdown = true;
            workAvailable.signalAll();
        } finally {
            lock.unlock();
        }
    }

    String describe() {
        lock.lock();
        try {
            return "ThreadPool '" + name + "': workers=" + workers + " idle=" + idle + " queued=" + queued + "\n";
        } finally {
            lock.unlock();
        }
    }

    /** Per-context list of finished jobs and the BH that completes them in that context. */
    static final class Completer {
        private static final VarHandle HEAD;

        static {
            try {
                HEAD = MethodHandles.lookup().findVarHandle(Completer.class, "done", ThreadPoolJob.class);
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        @SuppressWarnings("unused") // accessed through HEAD
        private volatile ThreadPoolJob done;
        private final BottomHalf bh;
        private final LegacySwitches legacy;
        /**
         * Finished jobs taken from {@link #done} and not yet completed, in
         * submission order: a field, not a local, so a nested run of the BH
         * (from a poll inside a completion) continues the same batch.
         * Home thread (or lock holder) only.
         */
        private ThreadPoolJob pending;
        private ThreadPoolJob pendingTail;

        Completer(AioContext ctx) {
            this.bh = ctx.bhNew("thread-pool-completion", this::completeAll);
            this.legacy = ctx.legacy();
        }

        void push(ThreadPoolJob job) {
            ThreadPoolJob h;
            do {
                h = (ThreadPoolJob) HEAD.getVolatile(this);
                job.next = h;
            } while (!HEAD.compareAndSet(this, h, job));
            bh.schedule();
        }

        /**
         * QEMU's {@code thread_pool_completion_bh}: completes every finished
         * job in submission order. Before each completion that leaves others
         * behind it, the BH schedules itself (3c80ca158c, "thread-pool: avoid
         * deadlock in nested aio_poll() calls"): a completion that polls for
         * a job finished in the same batch then runs this BH from its nested
         * poll and completes the rest. {@link LegacyBehavior#THREAD_POOL_BH_NOT_RESCHEDULED}
         * drops exactly that schedule.
         */
        private void completeAll() {
            takeFinished();
            while (pending != null) {
                ThreadPoolJob j = pending;
                pending = j.next;
                if (pending == null) {
                    pendingTail = null;
                }
                j.next = null;
                boolean rescheduled = pending != null && !legacy.isOn(LegacyBehavior.THREAD_POOL_BH_NOT_RESCHEDULED);
                if (rescheduled) {
                    bh.schedule();
                }
                try {
                    j.complete(j.ret);
                } catch (ClosedContextException | VirtualMachineError e) {
                    throw e;
                } catch (Throwable e) {
                    j.ctx.logFailure("thread-pool completion", e);
                }
                if (rescheduled) {
                    // This loop goes on itself; jobs pushed meanwhile (their push scheduled the BH too) are
                    // taken just below, so the self-schedule can go: QEMU's qemu_bh_cancel after the callback.
                    bh.cancel();
                }
                takeFinished();
            }
        }

        /** Moves the jobs workers pushed (a LIFO) to the tail of {@link #pending}, oldest first. */
        private void takeFinished() {
            ThreadPoolJob list = (ThreadPoolJob) HEAD.getAndSet(this, null);
            ThreadPoolJob fifo = null;
            ThreadPoolJob last = list;
            while (list != null) { // reverse the LIFO push order
                ThreadPoolJob n = list.next;
                list.next = fifo;
                fifo = list;
                list = n;
            }
            if (fifo == null) {
                return;
            }
            if (pendingTail == null) {
                pending = fifo;
            } else {
                pendingTail.next = fifo;
            }
            pendingTail = last;
        }
    }
}
