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

    void shutdown() {
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

        Completer(AioContext ctx) {
            this.bh = ctx.bhNew("thread-pool-completion", this::completeAll);
        }

        void push(ThreadPoolJob job) {
            ThreadPoolJob h;
            do {
                h = (ThreadPoolJob) HEAD.getVolatile(this);
                job.next = h;
            } while (!HEAD.compareAndSet(this, h, job));
            bh.schedule();
        }

        private void completeAll() {
            ThreadPoolJob list = (ThreadPoolJob) HEAD.getAndSet(this, null);
            ThreadPoolJob fifo = null;
            while (list != null) { // reverse the LIFO push order
                ThreadPoolJob n = list.next;
                list.next = fifo;
                fifo = list;
                list = n;
            }
            while (fifo != null) {
                ThreadPoolJob j = fifo;
                fifo = j.next;
                j.next = null;
                try {
                    j.complete(j.ret);
                } catch (ClosedContextException | VirtualMachineError e) {
                    throw e;
                } catch (Throwable e) {
                    j.ctx.logFailure("thread-pool completion", e);
                }
            }
        }
    }
}
