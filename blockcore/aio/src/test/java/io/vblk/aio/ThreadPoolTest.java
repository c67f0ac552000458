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
}
