package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * Live migration of a running Linux guest between two QEMU processes, each
 * on its own vhost-user-blk back-end over one shared image — here two
 * {@code qemu-storage-daemon} exports (image locking off, QEMU's set-up for
 * shared storage), which proves the harness's migration: the guest goes
 * there and back, its data written before reads back the same (O_DIRECT,
 * through the new back-end) and fio verify passes on each side, with no I/O
 * error in its kernel log.
 *
 * <p>{@link #migrateUnderFioLoop} is the stronger form issue 18 asks of
 * {@code vblk} (fio writing and verifying through the migration). It is not
 * run against qemu-storage-daemon 7.2 here: in 2 of 7 runs (one with
 * init_on_free=1) the guest's kernel crashed right after resuming on the
 * destination (list corruption, a call through NULL, in fio's context),
 * while 6 of 6 migrations without I/O passed — consistent with that daemon answering GET_VRING_BASE with
 * requests still in flight, the hand-off issue 18 requires vblk to get right.
 */
@Tag("linux-guest")
class LiveMigrationTest {
    private static final int DISK_MIB = 64;
    private static final Pattern ITERATIONS = Pattern.compile("fio iterations: (\\d+)");
    /** Reads the 8 MiB at 32 MiB with O_DIRECT (from the back-end, not the guest's page cache) and hashes them. */
    private static final String REGION_MD5 = "dd if=/dev/vda bs=1M skip=32 count=8 iflag=direct 2>/dev/null | md5sum";

    @RegisterExtension
    final GuestLogs logs = new GuestLogs();

    @Test
    void guestMigratesThereAndBackBetweenTwoStorageDaemons(@TempDir Path tmp) throws Exception {
        GuestEnvironment.require();
        Path image = DiskImages.sparse(tmp.resolve("shared.raw"), DISK_MIB);
        try (StorageDaemon src = StorageDaemon.start("qsd-src", logs.sockets().resolve("src.sock"), image,
                logs.dir(), true);
             StorageDaemon dst = StorageDaemon.start("qsd-dst", logs.sockets().resolve("dst.sock"), image,
                logs.dir(), true);
             LinuxGuest guest = LinuxGuest.boot(logs, src.socket(), LinuxGuest.Options.defaults(), src, dst)) {
            guest.check("dd if=/dev/urandom of=/dev/vda bs=1M seek=32 count=8 oflag=direct 2>/dev/null");
            String before = guest.check(REGION_MD5);
            for (StorageDaemon to : List.of(dst, src)) {
                LinuxGuest.Migration m = guest.migrateTo(to.socket());
                logs.note(String.format("migration to %s: %.1f s seen by the test; QEMU: downtime %d ms, %d MiB of RAM",
                        to.name(), m.seconds(), m.downtimeMs(), m.ramBytes() >> 20));
                assertEquals(before, guest.check(REGION_MD5), "data written before the migration, read on " + to.name());
                GuestResult r = guest.run(Fio.randwriteVerify("after-" + to.name(), "/dev/vda", 8, 0));
                assertEquals(0, r.status(), r + "\n" + guest.describe());
                assertEquals(8L << 20, Fio.parse(r).readBytes(), r.toString());
            }
            assertEquals(List.of(), guest.ioErrors(), "I/O errors in the guest's kernel log");
        }
    }

    /**
     * Migrates {@code guest} to the back-end on {@code destination} while a
     * loop of fio verify jobs ({@link Fio#verifyLoop}) runs in it, then stops
     * the loop and asserts that every job passed, that at least one ran on
     * the destination, and that the guest's kernel logged no I/O error.
     */
    static void migrateUnderFioLoop(LinuxGuest guest, Path destination, GuestLogs logs) throws Exception {
        guest.startBackground("fioloop", Fio.verifyLoop(8, null));
        LinuxGuest.Migration m = guest.migrateTo(destination);
        logs.note(String.format("migration under fio: %.1f s seen by the test; QEMU: downtime %d ms, %d MiB of RAM",
                m.seconds(), m.downtimeMs(), m.ramBytes() >> 20));
        String atMigration = guest.check("cat /tmp/iterations 2>/dev/null || echo 0").trim();
        guest.check("touch /tmp/stop");
        GuestResult loop = guest.awaitBackground("fioloop", Duration.ofMinutes(5));
        assertEquals(0, loop.status(), loop + "\n" + guest.describe());
        Matcher it = ITERATIONS.matcher(loop.output());
        assertTrue(it.find(), loop.toString());
        logs.note("fio verify iterations: " + atMigration + " done when the migration ended, " + it.group(1)
                + " in all");
        assertTrue(Integer.parseInt(it.group(1)) > Integer.parseInt(atMigration),
                "fio went on on the destination: " + loop);
        assertEquals(List.of(), guest.ioErrors(), "I/O errors in the guest's kernel log");
    }
}
