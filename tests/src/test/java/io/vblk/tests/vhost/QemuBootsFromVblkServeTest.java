package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlkDebugDriver;
import io.vblk.block.BlockNode;
import io.vblk.vhost.VhostUserBlkServer;
import io.vblk.vhost.VhostUserEvents;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Acceptance with a real client: Debian's QEMU (TCG) boots SeaBIOS from a
 * disk served by {@code vblk serve}, the boot sector prints a marker on the
 * serial port; QMP {@code system_reset} boots again, {@code stop}/{@code
 * cont} stop and restart the rings, and a QEMU killed with SIGKILL in the
 * middle of the boot — with the MBR read held inside the back-end — leaves
 * {@code vblk serve} ready to serve the next QEMU.
 */
class QemuBootsFromVblkServeTest {
    private static final String MARKER = "VBLK-VHOST-BOOT-OK";
    private static final Duration BOOT = Duration.ofSeconds(60);
    private static final Duration EVENT = Duration.ofSeconds(60);

    /** {@code vblk serve} as a child JVM: the real command line, its event lines on stdout. */
    private static final class ServeProcess implements AutoCloseable {
        final Process process;
        final LineSource out;

        ServeProcess(Path sock, Path image) throws Exception {
            process = new ProcessBuilder(Tools.javaCommand("io.vblk.cli.Main", "serve", "--socket", sock.toString(),
                    "--image", image.toString(), "--format", "raw")).redirectErrorStream(true).start();
            out = new LineSource("vblk-serve", process.getInputStream());
            out.await("vblk serve: listening on", EVENT);
        }

        @Override
        public void close() {
            Tools.kill(process);
        }
    }

    @Test
    void seabiosBootsThenResetsStopsAndContinues(@TempDir Path dir) throws Exception {
        Tools.qemu();
        Path img = Tools.bootDisk(dir.resolve("boot.raw"), MARKER, 16L << 20);
        Path sock = dir.resolve("vblk.sock");
        try (ServeProcess serve = new ServeProcess(sock, img);
             QemuVm vm = QemuVm.start(dir, "qemu", sock)) {
            serve.out.await("front-end connected", EVENT);
            vm.serial.await(MARKER, 1, BOOT, () -> vm.report() + "\n--- vblk serve ---\n" + serve.out.text());
            serve.out.await("rings [0] started", EVENT);

            vm.qmp.execute("system_reset"); // SET_VRING_ENABLE(0), GET_VRING_BASE, then the start sequence again
            serve.out.await("rings [0] stopped", EVENT);
            vm.serial.await(MARKER, 2, BOOT, () -> vm.report() + "\n--- vblk serve ---\n" + serve.out.text());
            serve.out.await("rings [0] started", EVENT);

            vm.qmp.execute("stop");
            serve.out.await("rings [0] stopped", EVENT);
            assertTrue(vm.qmp.execute("query-status").contains("\"paused\""), vm.report());
            vm.qmp.execute("cont");
            serve.out.await("rings [0] started", EVENT);
            assertTrue(vm.qmp.execute("query-status").contains("\"running\""), vm.report());

            vm.qmp.execute("system_reset"); // the rings still work after stop/cont: boots a third time
            vm.serial.await(MARKER, 3, BOOT, () -> vm.report() + "\n--- vblk serve ---\n" + serve.out.text());

            vm.qmp.execute("quit");
            serve.out.await("front-end disconnected", EVENT);
            assertTrue(serve.process.isAlive(), serve.out.text());
            assertFalse(serve.out.text().contains("refused"), serve.out.text());
            assertFalse(serve.out.text().contains("ERROR"), serve.out.text());
        }
    }

    @Test
    void qemuKilledAfterItsRingsStartedThenTheNextQemuBoots(@TempDir Path dir) throws Exception {
        Tools.qemu();
        Path img = Tools.bootDisk(dir.resolve("boot.raw"), MARKER, 16L << 20);
        Path sock = dir.resolve("vblk.sock");
        try (ServeProcess serve = new ServeProcess(sock, img)) {
            try (QemuVm first = QemuVm.start(dir, "qemu1", sock)) {
                serve.out.await("rings [0] started", EVENT); // SeaBIOS set DRIVER_OK: the boot is under way
                first.sigkill();
            }
            serve.out.await("front-end disconnected", EVENT);
            try (QemuVm second = QemuVm.start(dir, "qemu2", sock)) {
                serve.out.await("front-end connected", EVENT);
                second.serial.await(MARKER, 1, BOOT,
                        () -> second.report() + "\n--- vblk serve ---\n" + serve.out.text());
            }
            serve.out.await("front-end disconnected", EVENT);
            assertTrue(serve.process.isAlive(), serve.out.text());
        }
    }

    /**
     * The kill lands while the back-end holds QEMU's MBR read (a blkdebug
     * suspension under the export): the request completes into the dead
     * QEMU's memory, the connection ends, and the next QEMU boots.
     */
    @Test
    void qemuKilledWithTheMbrReadInFlightThenTheNextQemuBoots(@TempDir Path dir) throws Exception {
        Tools.qemu();
        Path img = Tools.bootDisk(dir.resolve("boot.raw"), MARKER, 16L << 20);
        Path sock = dir.resolve("vblk.sock");
        AtomicReference<BlkDebugDriver.Suspension> held = new AtomicReference<>();
        LinkedBlockingQueue<String> events = new LinkedBlockingQueue<>();
        VhostUserBlkServer.NodeOpener opener = (layer, o) -> {
            BlockNode raw = layer.openImage("img", o.image(), "raw", false);
            BlockNode dbg = layer.openBlkDebug("disk", raw);
            raw.unref();
            held.set(((BlkDebugDriver) dbg.driver()).suspend("mbr", BlkDebugDriver.Op.READ, 0, 512));
            return dbg;
        };
        VhostUserEvents ev = new VhostUserEvents() {
            @Override
            public void connected(int pid) {
                events.add("connected");
            }

            @Override
            public void disconnected(String why) {
                events.add("disconnected: " + why);
            }
        };
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(sock, img, "raw"),
                opener, ev)) {
            try (QemuVm first = QemuVm.start(dir, "qemu1", sock)) {
                CompletableFuture<Void> reached = held.get().reached();
                srv.mainLoop().watchdog(BOOT).await("QEMU's MBR read reaching the back-end", reached);
                assertEquals(1, srv.device().requestsInFlight(), srv.describe());
                first.sigkill();
                assertEquals(0, first.serial.count(MARKER), "killed before the boot sector ran");
            }
            held.get().resume(); // the held read completes into the dead front-end's (still mapped) memory
            awaitEvent(events, "disconnected", srv);
            assertEquals(0, srv.device().requestsInFlight(), srv.describe());
            try (QemuVm second = QemuVm.start(dir, "qemu2", sock)) {
                second.serial.await(MARKER, 1, BOOT, () -> second.report() + "\n--- back-end ---\n" + srv.describe());
            }
            awaitEvent(events, "disconnected", srv);
            assertEquals(2, srv.server().connections());
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }

    private static void awaitEvent(LinkedBlockingQueue<String> q, String prefix, VhostUserBlkServer srv)
            throws InterruptedException {
        long deadline = System.nanoTime() + EVENT.toNanos();
        for (;;) {
            String e = q.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            if (e == null) {
                throw srv.mainLoop().watchdog(EVENT).hang("back-end event '" + prefix + "'");
            }
            if (e.startsWith(prefix)) {
                return;
            }
        }
    }
}
