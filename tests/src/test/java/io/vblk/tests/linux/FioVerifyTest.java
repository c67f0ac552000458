package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real Linux guest (Debian's cloud kernel, virtio_blk) writes random
 * blocks with checksums over its whole vhost-user-blk disk and reads them
 * back: on {@code vblk serve}, the back-end under test, and on
 * {@code qemu-storage-daemon}, which proves the harness (the same test
 * passes on the reference back-end). Fails on any fio error, a verify
 * mismatch, fewer bytes read back than written, or an I/O error in the
 * guest kernel's log.
 */
@Tag("linux-guest")
class FioVerifyTest {
    private static final int DISK_MIB = 64;
    private static final int FIO_MIB = 16;

    @RegisterExtension
    final GuestLogs logs = new GuestLogs();

    @Test
    void fioVerifiesOnVblkServe(@TempDir Path tmp) throws Exception {
        GuestEnvironment.require();
        Path image = DiskImages.sparse(tmp.resolve("disk.raw"), DISK_MIB);
        try (VblkServe serve = VblkServe.start("vblk-serve", logs.sockets().resolve("vblk.sock"), image, logs.dir());
             LinuxGuest guest = LinuxGuest.boot(logs, serve)) {
            fioVerifies(guest);
            assertTrue(serve.process().isAlive(), serve.describe());
        }
    }

    @Test
    void fioVerifiesOnQemuStorageDaemon(@TempDir Path tmp) throws Exception {
        GuestEnvironment.require();
        Path image = DiskImages.sparse(tmp.resolve("disk.raw"), DISK_MIB);
        try (StorageDaemon qsd = StorageDaemon.start("qsd", logs.sockets().resolve("qsd.sock"), image, logs.dir(),
                false);
             LinuxGuest guest = LinuxGuest.boot(logs, qsd)) {
            fioVerifies(guest);
        }
    }

    private void fioVerifies(LinuxGuest guest) throws Exception {
        assertEquals((long) DISK_MIB << 11, guest.diskSectors(), "the guest sees the image's size");
        GuestResult r = guest.run(Fio.randwriteVerify("randwrite-verify", "/dev/vda", FIO_MIB, 0));
        Fio.Job job = Fio.parse(r);
        logs.note("fio: " + job);
        assertEquals(0, r.status(), r + "\n" + guest.describe());
        assertEquals(0, job.error(), r.toString());
        assertEquals((long) FIO_MIB << 20, job.writtenBytes(), "every block written once: " + job);
        assertEquals(job.writtenBytes(), job.readBytes(), "every written block read back and verified: " + job);
        assertEquals(List.of(), guest.ioErrors(), "I/O errors in the guest's kernel log");
    }
}
