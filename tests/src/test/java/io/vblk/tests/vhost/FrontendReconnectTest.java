package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.AioContext;
import io.vblk.bench.BenchConfig;
import io.vblk.bench.BenchResult;
import io.vblk.bench.BenchRunner;
import io.vblk.block.FileOptions;
import io.vblk.guest.IoPattern;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * vblk's own vhost-user front-end (the simulated machine's
 * {@code VhostUserBlkFrontend}, as {@code vblk bench --vhost-user} runs it)
 * when its back-end dies: a {@code vblk serve} child is killed with SIGKILL
 * while the guest has requests queued and started again with the same
 * arguments; the front-end reconnects to it, renegotiates, hands over the
 * inflight region, and the guest's workload finishes without an I/O error.
 */
class FrontendReconnectTest {
    private static final Duration BOUND = Duration.ofSeconds(120);

    private static Process serve(Path sock, Path log) throws Exception {
        Process p = new ProcessBuilder(Tools.javaCommand("io.vblk.cli.Main", "serve", "--socket", sock.toString(),
                "--null", "256M")).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        new SerialLog(log).await("listening on " + sock, 1, BOUND, () -> "");
        return p;
    }

    @Test
    void theGuestSurvivesItsBackEndsSigkillAndRestart(@TempDir Path dir) throws Exception {
        Path sock = dir.resolve("s.sock");
        Path log1 = dir.resolve("serve-1.out");
        Path log2 = dir.resolve("serve-2.out");
        Process first = serve(sock, log1);
        Process second = null;
        try {
            BenchConfig cfg = new BenchConfig(1, 1, 32, 4096, IoPattern.parse("randread"), BenchConfig.Backend.NULL,
                    null, null, 256L << 20, 6_000_000_000L, 0, true, false, AioContext.DEFAULT_POLL_MAX_NS, false, 1,
                    0, false, FileOptions.defaults());
            CompletableFuture<BenchResult> run = CompletableFuture.supplyAsync(
                    () -> new BenchRunner(cfg, BenchRunner.Progress.NONE, sock).run());
            // the firmware's boot starts the rings once, the driver's probe (after a reset) a second time
            new SerialLog(log1).await("rings [0] started", 2, BOUND, () -> "");
            first.destroyForcibly(); // SIGKILL with the guest's requests in flight
            first.waitFor();
            second = serve(sock, log2);
            new SerialLog(log2).await("rings [0] started", 1, BOUND, () -> "the front-end did not reconnect");
            BenchResult r = run.get(BOUND.toSeconds(), TimeUnit.SECONDS);
            assertTrue(r.ok(), "the guest saw an error: " + r.firstProblem() + " errors=" + r.errors());
            assertTrue(r.requests() > 0, "the workload ran");
            System.out.printf("reconnect: %d requests, max latency %.1f ms (the stall, if it fell in the window)%n",
                    r.requests(), r.maxNs() / 1e6);
        } finally {
            Tools.kill(first);
            Tools.stop(second, Duration.ofSeconds(30));
        }
    }
}
