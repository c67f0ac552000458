package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("concurrency")
class ExternalHandlerTest {

    @Test
    void externalHandlersAreHeldWhileDisabledAndDispatchedAfterEnableWithNesting() {
        try (MainLoop loop = new MainLoop();
             EventNotifier kick = new EventNotifier();
             EventNotifier internal = new EventNotifier()) {
            IOThread io = loop.newIOThread("io0", 0);
            AioContext ctx = io.context();
            AtomicInteger kicks = new AtomicInteger();
            AtomicInteger internals = new AtomicInteger();
            loop.watchdog(Loops.OK).await("external handlers", ctx.run("external handlers", () -> {
                ctx.setFdHandler(new AioHandler.Builder("kick", kick.fd()).external(true).onRead(() -> {
                    kick.testAndClear();
                    kicks.incrementAndGet();
                }));
                ctx.setFdHandler(new AioHandler.Builder("internal", internal.fd()).onRead(() -> {
                    internal.testAndClear();
                    internals.incrementAndGet();
                }));
                ctx.disableExternal();
                ctx.disableExternal();
                kick.set();
                internal.set();
                assertTrue(ctx.poll(false), "internal handlers still run while external ones are disabled");
                assertEquals(1, internals.get());
                assertFalse(ctx.poll(false));
                assertFalse(ctx.poll(false));
                assertEquals(0, kicks.get(), "held while disabled");
                ctx.enableExternal();
                assertFalse(ctx.poll(false));
                assertEquals(0, kicks.get(), "disable nests: still held after one enable");
                ctx.enableExternal();
                assertTrue(ctx.poll(false));
                assertEquals(1, kicks.get(), "the held kick is dispatched once enabled, not lost");
            }));
            assertThrows(IllegalStateException.class, ctx::enableExternal);
        }
    }

    @Test
    void aKickArrivingWhileTheIothreadSleepsWakesIt() {
        try (MainLoop loop = new MainLoop();
             EventNotifier kick = new EventNotifier()) {
            IOThread io = loop.newIOThread("io0");
            CountDownLatch kicked = new CountDownLatch(1000);
            io.context().setFdHandler(new AioHandler.Builder("kick", kick.fd()).external(true).onRead(() -> {
                if (kick.testAndClear()) {
                    kicked.countDown();
                }
            }));
            Thread vcpu = new Thread(() -> {
                for (int i = 0; i < 1000; i++) {
                    long before = kicked.getCount();
                    kick.set();
                    while (kicked.getCount() == before) {
                        Thread.onSpinWait();
                    }
                }
            });
            vcpu.start();
            Loops.await(loop, kicked, "1000 kicks");
        }
    }
}
