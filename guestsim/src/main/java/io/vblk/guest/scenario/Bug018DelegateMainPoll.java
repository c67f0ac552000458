package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlkDebugDriver;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;
import io.vblk.block.NullDriver;

import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * Bug 018, QEMU 3c18a92dc4 "aio-wait: delegate polling of main AioContext if
 * BQL not held": a thread that runs no event loop (the migration thread
 * writing the vmstate during savevm) counted as the main context's home
 * thread, so its synchronous write polled the main context beside the main
 * loop.
 */
public final class Bug018DelegateMainPoll implements Scenario {
    /** QEMU's migration thread, which writes the vmstate during savevm. */
    static final String MIGRATION_THREAD = "live_migration";

    @Override
    public String id() {
        return "018-delegate-main-poll";
    }

    @Override
    public String title() {
        return "main-context-home-needs-bql";
    }

    @Override
    public String upstreamCommit() {
        return "3c18a92dc4";
    }

    @Override
    public String summary() {
        return "a thread without the BQL counted as the main context's home: AIO_WAIT_WHILE in the migration thread "
                + "ran aio_poll on the main context beside the main loop, breaking its single-poller notify_me protocol";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: the main loop (the main context's home; vblk's BQL is running in it) and '"
                        + MIGRATION_THREAD + "', a thread that runs no event loop, as QEMU's migration thread when "
                        + "savevm writes the vmstate.",
                "Steps: '" + MIGRATION_THREAD + "' acquires the main context (aio_context_acquire) and writes a page "
                        + "of vmstate synchronously (BlockNode.pwriteSync) to a node in the main context; the write "
                        + "is held in the backend (a blkdebug suspension) and released once it is held, in a "
                        + "main-context BH, which the main loop can only run once the writer lets the lock go. The "
                        + "write's completion waits with AioWait.pollWhile on the main context (BDRV_POLL_WHILE). Same "
                        + "steps in both runs.",
                "Fix: only the BQL holder is home to the main context (QEMU's in_aio_context_home_thread since "
                        + "3c18a92dc4; vblk's AioContext.inHomeThread: only the event-loop thread). The writer is not, "
                        + "so its wait polls nothing: it releases the main context once, as AIO_WAIT_WHILE does, the "
                        + "main loop runs the resumption and the completion, and the completion's aio_wait_kick wakes "
                        + "the writer (AioWait.waitDelegated).",
                "Legacy (" + LegacyBehavior.MAIN_CONTEXT_HOME_WITHOUT_BQL + ") restores the pre-fix answer: any thread "
                        + "that is no IOThread is the main context's home. The writer's wait then takes the home path "
                        + "and runs a blocking aio_poll of the main context while the main loop is polling it. QEMU "
                        + "let that second poller in, and since 5710a3e09f (bug 006) notify_me is written without an "
                        + "atomic operation on the promise of one poller, so the two raced on it; vblk's poll refuses a "
                        + "blocking poll outside the home thread (DESIGN.md rule 3), and that refusal, naming both "
                        + "threads, is the failure this scenario reports. The held write then completes in the main "
                        + "loop.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.MAIN_CONTEXT_HOME_WITHOUT_BQL, legacy);
        Duration okBound = Duration.ofSeconds(30);
        try (MainLoop loop = new MainLoop("main-loop", sw); BlockLayer layer = new BlockLayer(loop)) {
            Watchdog ok = loop.watchdog(okBound);
            AioContext main = loop.context();
            BlockNode node = ok.call("open the vmstate image", () -> {
                BlockNode nul = layer.openNull("vmstate-file", NullDriver.Options.of(1L << 20));
                BlockNode dbg = layer.openBlkDebug("vmstate", nul);
                nul.unref();
                return dbg;
            });
            BlkDebugDriver dbg = (BlkDebugDriver) node.driver();
            BlkDebugDriver.Suspension inBackend = dbg.suspend("the vmstate write", BlkDebugDriver.Op.WRITE, 0, 4096);
            ByteBuffer page = ByteBuffer.allocateDirect(4096);
            CompletableFuture<Integer> written = new CompletableFuture<>();
            Thread writer = new Thread(() -> {
                try (AioContextLock.Held h = main.acquire()) {
                    written.complete(node.pwriteSync(0, 4096, IoVec.of(page), 0));
                } catch (Throwable t) {
                    written.completeExceptionally(t);
                }
            }, MIGRATION_THREAD);
            writer.setDaemon(true);
            long t0 = System.nanoTime();
            writer.start();
            try {
                ok.await("the vmstate write held in the backend", inBackend.reached());
                inBackend.resume(); // a main-context BH: it runs once the writer lets the main context's lock go
                Staged<Integer> wait;
                try {
                    wait = Staged.await(loop.watchdog(hangBound), "the vmstate write's synchronous wait", written);
                } catch (IllegalStateException e) {
                    ok.run("the held write completing in the main loop", node::drain);
                    return new ScenarioResult(id(), title(), legacy, true, "polls the main context from a second "
                            + "thread", System.nanoTime() - t0, hangBound, e.getMessage(), null);
                }
                if (wait.hung()) {
                    return wait.result(this, legacy, hangBound, "'" + MIGRATION_THREAD + "' never learnt that its "
                            + "write completed");
                }
                if (wait.result() != 0) {
                    throw new IllegalStateException(id() + ": the vmstate write failed: " + wait.result());
                }
                return new ScenarioResult(id(), title(), legacy, false, System.nanoTime() - t0, hangBound,
                        "'" + MIGRATION_THREAD + "' polled nothing: the main loop completed its write and kicked it",
                        null);
            } finally {
                writer.join(okBound.toMillis());
            }
        }
    }
}
