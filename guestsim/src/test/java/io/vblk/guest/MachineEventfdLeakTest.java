package io.vblk.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vblk.firmware.BootVerdict;
import io.vblk.vhost.VhostUserBlkServer;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.List;
import java.util.function.Consumer;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A closed machine leaves no eventfd behind: every ioeventfd (host
 * notifier), irqfd (guest notifier, the MSI-X vectors' eventfds), INTx
 * eventfd and context wake-up it made is closed by {@link Machine#close()}
 * (QEMU: {@code event_notifier_cleanup} from
 * {@code virtio_bus_cleanup_host_notifier} and the irqfd release). Counted
 * as {@code /proc/self/fd} links to {@code anon_inode:[eventfd]}, for the
 * machine shapes that leaked 3, 4 and 6 of them.
 */
class MachineEventfdLeakTest {
    private static final Path FDS = Paths.get("/proc/self/fd");

    @BeforeAll
    static void needsProc() {
        Assumptions.assumeTrue(Files.isDirectory(FDS), "needs /proc/self/fd");
    }

    @Test
    void oneDiskServedByTheMainLoop() {
        assertNoEventfdLeft(MachineConfig.of(1, 0, List.of(DiskSpec.nullDevice(1 << 20))), m -> { });
    }

    @Test
    void twoQueueDisk() {
        assertNoEventfdLeft(MachineConfig.of(1, 0, List.of(DiskSpec.nullDevice(1 << 20).withQueues(2))), m -> { });
    }

    @Test
    void twoDisks() {
        assertNoEventfdLeft(MachineConfig.of(1, 0, List.of(DiskSpec.nullDevice(1 << 20),
                DiskSpec.nullDevice(1 << 20))), m -> { });
    }

    @Test
    void twoQueueDataplaneDiskOnTwoIothreads() {
        assertNoEventfdLeft(MachineConfig.of(1, 2, List.of(DiskSpec.nullDevice(1 << 20).withQueues(2)
                .withIothreads(MachineConfig.iothreadNames(2)))), m -> { });
    }

    @Test
    void afterABootWithoutDataplane(@TempDir Path dir) throws IOException {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        assertNoEventfdLeft(MachineConfig.of(1, 0, List.of(DiskSpec.image(img, "raw").withQueues(2))),
                MachineEventfdLeakTest::boot);
    }

    @Test
    void afterABootADataplaneRestartAndASystemReset(@TempDir Path dir) throws IOException {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        DiskSpec disk = DiskSpec.image(img, "raw").withQueues(2).withIothreads(MachineConfig.iothreadNames(2));
        assertNoEventfdLeft(MachineConfig.of(2, 2, List.of(disk, DiskSpec.nullDevice(1 << 20)
                .withIothreads(MachineConfig.iothreadNames(1)))), m -> {
                    boot(m);
                    m.restartDataplane(0);
                    BootVerdict v = m.await("reboot", m.systemReset(), Duration.ofSeconds(60));
                    assertEquals(BootVerdict.MBR_OK, v, String.join("\n", m.console().lines()));
                });
    }

    @Test
    void vhostUserDiskAfterABootAndASystemReset(@TempDir Path dir) throws IOException {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        Path sock = dir.resolve("vblk.sock");
        int before = eventfds();
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(sock, img, "raw"))) {
            try (Machine m = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock))))) {
                boot(m);
                BootVerdict v = m.await("reboot", m.systemReset(), Duration.ofSeconds(60));
                assertEquals(BootVerdict.MBR_OK, v, String.join("\n", m.console().lines()));
            }
        }
        assertEquals(before, eventfds(), "eventfds left open by a closed vhost-user machine and its back-end");
    }

    @Test
    void manyMachinesInARow() {
        MachineConfig cfg = MachineConfig.of(1, 1, List.of(DiskSpec.nullDevice(1 << 20)
                .withIothreads(MachineConfig.iothreadNames(1)), DiskSpec.nullDevice(1 << 20).withQueues(2)));
        int before = eventfds();
        for (int i = 0; i < 20; i++) {
            Machine.start(cfg).close();
        }
        assertEquals(before, eventfds(), "eventfds left open by 20 closed machines");
    }

    private static void boot(Machine m) {
        BootReport r = m.boot();
        assertEquals(BootVerdict.MBR_OK, r.verdict(), String.join("\n", r.console()));
    }

    private static void assertNoEventfdLeft(MachineConfig cfg, Consumer<Machine> use) {
        int before = eventfds();
        try (Machine m = Machine.start(cfg)) {
            use.accept(m);
        }
        assertEquals(before, eventfds(), "eventfds left open by a closed machine");
    }

    /** This process's eventfds: links in /proc/self/fd to anon_inode:[eventfd]. */
    static int eventfds() {
        int n = 0;
        try (DirectoryStream<Path> fds = Files.newDirectoryStream(FDS)) {
            for (Path fd : fds) {
                try {
                    if (Files.readSymbolicLink(fd).toString().equals("anon_inode:[eventfd]")) {
                        n++;
                    }
                } catch (IOException e) {
                    // closed while listing (the directory stream's own descriptor, among others)
                }
            }
        } catch (IOException e) {
            throw new AssertionError("cannot list " + FDS, e);
        }
        return n;
    }
}
