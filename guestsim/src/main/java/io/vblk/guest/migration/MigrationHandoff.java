package io.vblk.guest.migration;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.Errno;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.guest.Machine;

import java.time.Duration;

/**
 * The block half of a live migration between two {@link Machine}s of one
 * process that share the same image files: QEMU's
 * {@code migration_completion} on the source ({@code vm_stop},
 * {@code bdrv_flush_all}, {@code bdrv_inactivate_all}) and
 * {@code process_incoming_migration_bh} on the destination
 * ({@code bdrv_activate_all}, {@code vm_start}).
 *
 * <p>Only one side is active at a time: an inactive node refuses writes and
 * re-reads its metadata when activated, so the images can go back and forth.
 * The guest's RAM and device state are not transferred: the destination's
 * guest was booted and its driver probed beforehand (the state it would
 * receive), and it is held paused until the hand-off. Every step runs in the
 * machine's main loop, bounded by a watchdog: a hang (seed 003) is a
 * {@link io.vblk.aio.HangDetectedException} with the dump.
 */
public final class MigrationHandoff {
    private MigrationHandoff() {
    }

    /** QEMU {@code -incoming}: the destination stays paused, its images inactive, until {@link #startDestination}. */
    public static void incoming(Machine dst, Duration bound) {
        dst.watchdog(bound).run("migration: incoming", () -> {
            dst.pause();
            check(dst.blockLayer().inactivateAll(), "inactivating the destination's images");
        });
    }

    /** The source stops: vCPUs and dataplanes stop, every disk is flushed, every node inactivated (seed 003). */
    public static void stopSource(Machine src, Duration bound) {
        src.watchdog(bound).run("migration: stop source, flush, inactivate all", () -> {
            src.pause();
            for (Machine.Disk d : src.disks()) {
                BlockNode n = d.backend().root();
                AioContext c = n.context();
                try (AioContextLock.Held h = c.inHomeThread() ? null : c.acquire()) {
                    check(n.flushSync(), "flushing " + n.name());
                }
            }
            check(src.blockLayer().inactivateAll(), "inactivating the source's images");
        });
    }

    /** The destination takes over: its nodes re-read the images and become writable, the guest runs again. */
    public static void startDestination(Machine dst, Duration bound) {
        dst.watchdog(bound).run("migration: activate destination, resume", () -> {
            check(dst.blockLayer().activateAll(), "activating the destination's images");
            dst.resume();
        });
    }

    /** The whole hand-off from {@code src} (running) to {@code dst} (incoming). */
    public static void migrate(Machine src, Machine dst, Duration bound) {
        stopSource(src, bound);
        startDestination(dst, bound);
    }

    private static void check(int ret, String what) {
        if (ret < 0) {
            throw new BlockException(what + " failed: " + Errno.name(-ret));
        }
    }
}
