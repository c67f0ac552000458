package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A file system on the vhost-user-blk disk: the guest makes ext4 on
 * /dev/vda, mounts it, writes a file it keeps and one it deletes, and runs
 * {@code fstrim}, which sends discard requests for the free space. The kept
 * file must read back the same after a remount (the discards hit free space
 * only), fstrim must report trimmed bytes and the kernel no I/O error. The
 * host's allocation of the image ({@code du}) is recorded before and after
 * in the test's notes.txt; against {@code qemu-storage-daemon} with
 * {@code discard=unmap} it must shrink, which proves the measurement
 * and with {@code vblk serve --aio io_uring --cache-direct --discard unmap}
 * (issue 19) too.
 */
@Tag("linux-guest")
class Ext4FstrimTest {
    private static final int DISK_MIB = 128;
    private static final Pattern TRIMMED = Pattern.compile("(\\d+) bytes trimmed");

    @RegisterExtension
    final GuestLogs logs = new GuestLogs();

    @Test
    void ext4AndFstrimOnVblkServe(@TempDir Path tmp) throws Exception {
        GuestEnvironment.require();
        Path image = DiskImages.sparse(tmp.resolve("disk.raw"), DISK_MIB);
        try (VblkServe serve = VblkServe.start("vblk-serve", logs.sockets().resolve("vblk.sock"), image, logs.dir());
             LinuxGuest guest = LinuxGuest.boot(logs, serve)) {
            long[] du = fstrimKeepsDataAndTrims(guest, image);
            // recorded, not asserted: with the default discard=ignore the host file keeps its blocks (the test
            // below asserts the shrink with discard=unmap)
            logs.note("vblk serve: the host's allocation of the image did " + (du[1] < du[0] ? "" : "not ") + "shrink");
        }
    }

    /**
     * Issue 19: with the file driver's io_uring, O_DIRECT and
     * {@code discard=unmap} ({@code --aio io_uring --cache-direct --discard unmap},
     * QEMU's {@code aio=io_uring,cache.direct=on,discard=unmap}) the guest's
     * fstrim punches the deleted file's blocks out of the host file.
     */
    @Test
    void ext4AndFstrimOnVblkServeWithIoUringDirectUnmapShrinksTheImage(@TempDir Path tmp) throws Exception {
        GuestEnvironment.require();
        Path image = DiskImages.sparse(tmp.resolve("disk.raw"), DISK_MIB);
        try (VblkServe serve = VblkServe.start("vblk-serve", logs.sockets().resolve("vblk.sock"), image, logs.dir(),
                "--aio", "io_uring", "--cache-direct", "--discard", "unmap");
             LinuxGuest guest = LinuxGuest.boot(logs, serve)) {
            long[] du = fstrimKeepsDataAndTrims(guest, image);
            assertTrue(du[0] - du[1] >= 24 * 1024, "du before fstrim " + du[0] + " KiB, after " + du[1] + " KiB");
        }
    }

    @Test
    void ext4AndFstrimOnQemuStorageDaemonShrinksTheImage(@TempDir Path tmp) throws Exception {
        GuestEnvironment.require();
        Path image = DiskImages.sparse(tmp.resolve("disk.raw"), DISK_MIB);
        try (StorageDaemon qsd = StorageDaemon.start("qsd", logs.sockets().resolve("qsd.sock"), image, logs.dir(),
                false);
             LinuxGuest guest = LinuxGuest.boot(logs, qsd)) {
            long[] du = fstrimKeepsDataAndTrims(guest, image);
            // the 32 MiB file that was deleted: its blocks were written on the host, and fstrim punched them out
            assertTrue(du[0] - du[1] >= 24 * 1024, "du before fstrim " + du[0] + " KiB, after " + du[1] + " KiB");
        }
    }

    /** Returns the image's allocation (KiB) before and after fstrim. */
    private long[] fstrimKeepsDataAndTrims(LinuxGuest guest, Path image) throws Exception {
        long discardMax = Long.parseLong(guest.check("cat /sys/block/vda/queue/discard_max_bytes").trim());
        assertTrue(discardMax > 0, "the disk offers discard (VIRTIO_BLK_F_DISCARD): discard_max_bytes " + discardMax);
        logs.note("du after boot: " + DiskImages.allocatedKiB(image) + " KiB");
        // no discard at mkfs (fstrim is what is tested) and no lazy init (no background writes while measuring)
        guest.check("mkfs.ext4 -q -F -E nodiscard,lazy_itable_init=0,lazy_journal_init=0 /dev/vda");
        guest.check("mount -t ext4 /dev/vda /mnt");
        guest.check("dd if=/dev/urandom of=/mnt/keep bs=1M count=4 2>/dev/null && md5sum /mnt/keep >/tmp/keep.md5");
        guest.check("dd if=/dev/zero of=/mnt/scratch bs=1M count=32 conv=fsync 2>/dev/null && sync");
        long before = DiskImages.allocatedKiB(image);
        logs.note("du with the 32 MiB scratch file written: " + before + " KiB");
        guest.check("rm /mnt/scratch && sync");
        GuestResult trim = guest.run("fstrim -v /mnt");
        assertEquals(0, trim.status(), trim + "\n" + guest.describe());
        Matcher m = TRIMMED.matcher(trim.output());
        assertTrue(m.find(), trim.toString());
        long trimmed = Long.parseLong(m.group(1));
        assertTrue(trimmed >= 32L << 20, "fstrim trims at least the deleted file's 32 MiB: " + trim);
        guest.check("sync");
        long after = DiskImages.allocatedKiB(image);
        logs.note("fstrim: " + trimmed + " bytes trimmed; du after fstrim: " + after + " KiB");
        guest.check("umount /mnt && mount -t ext4 /dev/vda /mnt && md5sum -c /tmp/keep.md5 && umount /mnt");
        assertEquals(List.of(), guest.ioErrors(), "I/O errors in the guest's kernel log");
        return new long[] {before, after};
    }
}
