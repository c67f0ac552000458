package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("concurrency")
class WatchdogTest {

    @Test
    void anExpiredWaitFailsWithADumpOfEveryLoopAndDiagnostic() throws Exception {
        try (MainLoop loop = new MainLoop()) {
            IOThread io = loop.newIOThread("io7");
            try (AutoCloseable diag = loop.addDiagnostics("block node disk0", () -> "in_flight=3")) {
                io.context().bhNew("never-run", () -> { }); // not scheduled: must not show
                HangDetectedException e = assertThrows(HangDetectedException.class,
                        () -> new Watchdog(loop, Duration.ofMillis(200)).await("a future nobody completes",
                                new CompletableFuture<Void>()));
                String dump = e.dump();
                assertTrue(e.getMessage().startsWith("hang detected: a future nobody completes did not finish within 200 ms"));
                for (String s : new String[] {"AioContext 'main-loop' thread 'main-loop'", "AioContext 'io7' thread 'io7'",
                        "notify_me=", "notified=", "pending BHs (0)", "lock: ", "handlers: ", "ThreadPool",
                        "--- block node disk0 ---", "in_flight=3", "EventLoopThread.run"}) {
                    assertTrue(dump.contains(s), "dump lacks '" + s + "':\n" + dump);
                }
            }
        }
    }
}
