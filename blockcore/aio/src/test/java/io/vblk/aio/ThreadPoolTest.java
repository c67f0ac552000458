package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("concurrency")
class ThreadPoolTest {

    @Test
    void jobsRunOnWorkersAndCompleteInTheSubmittingContext() {
        try (MainLoop loop = new MainLoop()) {
            IOThread io = loop.newIOThread("io0");
            int n = 2000;
            AtomicIntegerArray completions = new AtomicIntegerArray(n);
            AtomicInteger onWorker = new AtomicInteger();
            AtomicInteger wrongThread = new AtomicInteger();
            CountDownLatch done = new CountDownLatch(n);
            Thread home = io.thread();
            io.context().bhScheduleOneshot(() -> {
                for (int i = 0; i < n; i++) {
                    final int idx = i;
                    loop.threadPool().submit(io.context(), new ThreadPoolJob() {
                        @Override
                        protected int work() {
                            if (Thread.currentThread().getName().startsWith("main-loop-worker")) {
                                onWorker.incrementAndGet();
                            }
                            return idx == 7 ? -Errno.EIO : idx;
                        }

                        @Override
                        protected void complete(int ret) {
                            if (Thread.currentThread() != home) {
                                wrongThread.incrementAndGet();
                            }
                            assertEquals(idx == 7 ? -Errno.EIO : idx, ret);
                            completions.incrementAndGet(idx);
                            done.countDown();
                        }
                    });
                }
            });
            Loops.await(loop, done, "thread pool completions");
            for (int i = 0; i < n; i++) {
                assertEquals(1, completions.get(i));
            }
            assertEquals(n, onWorker.get());
            assertEquals(0, wrongThread.get());
            assertEquals(0, loop.failures().size(), loop.failures().toString());
        }
    }
    /**
     * 3c80ca158c: two jobs finished before their completion BH ran; the first
     * one's completion polls its context until the second completed. The BH
     * schedules itself before the first completion, so the nested poll
     * completes the second from the same batch, and the outer run does not
     * complete it twice. (Bug020Test shows the hang without the schedule.)
     */
    @Test
    void aCompletionPollingForASiblingOfItsBatchCompletesItFromTheNestedPoll() {
        ThreadPool one = new ThreadPool("nested-worker", 1); // jobs finish in submission order
        try (MainLoop loop = new MainLoop()) {
            IOThread io = loop.newIOThread("io0");
            AioContext ctx = io.context();
            AtomicInteger bCompletions = new AtomicInteger();
            AtomicInteger order = new AtomicInteger();
            java.util.concurrent.CompletableFuture<Boolean> aWaited = new java.util.concurrent.CompletableFuture<>();
            CountDownLatch bothFinished = new CountDownLatch(1);
            LoopHold held = LoopHold.atNextPoll(ctx);
            ctx.aioNotify();
            held.awaitHeld(loop.watchdog(Loops.OK), "io0 held");
            try {
                one.submit(ctx, job(() -> 0, () -> {
                    order.compareAndSet(0, 1);
                    aWaited.complete(AioWait.pollWhile(ctx, () -> bCompletions.get() == 0));
                }));
                one.submit(ctx, job(() -> 0, () -> {
                    order.compareAndSet(1, 2);
                    bCompletions.incrementAndGet();
                }));
                one.submit(loop.context(), job(() -> {
                    bothFinished.countDown(); // the single worker pushed both before it took this one
                    return 0;
                }, () -> { }));
                Loops.await(loop, bothFinished, "both jobs finished");
            } finally {
                held.release();
            }
            assertEquals(true, loop.watchdog(Loops.OK).await("A's completion", aWaited), "A polled for B");
            assertEquals(2, order.get(), "A's completion ran first, B's inside it");
            assertEquals(1, loop.watchdog(Loops.OK).await("B's completions, once io0 went round",
                    ctx.submit("round", bCompletions::get)), "B completed once");
            assertEquals(0, loop.failures().size(), loop.failures().toString());
        } finally {
            one.shutdown();
        }
    }

    private static ThreadPoolJob job(java.util.function.IntSupplier work, Runnable completion) {
        return new ThreadPoolJob() {
            @Override
            protected int work() {
                return work.getAsInt();
            }

            @Override
            protected void complete(int ret) {
                completion.run();
            }
        };
    }
}
