package io.vblk.tests.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.AioWait;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.vhost.VhostUserBlkFrontend;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.RamRegion;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * QMP {@code block_resize} on {@code vblk daemon} (issue 17/18): the host
 * file changes size, the vhost-user-blk export's front-end — vblk's own,
 * which negotiated BACKEND_REQ — is told with a config change and reads the
 * new capacity; bad arguments get QEMU's error words. With
 * {@code -Dvblk.daemon=qsd} the same run against qemu-storage-daemon (which
 * proves the error words and the file's growth; qsd 7.2 sends no config
 * change, so that part is vblk's only).
 */
class DaemonResizeTest {
    private static final Duration BOUND = Duration.ofSeconds(60);

    @Test
    void blockResizeGrowsTheFileAndTheFrontEndSeesTheNewCapacity(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("disk.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8L << 20);
        }
        Path qmp = dir.resolve("qmp.sock");
        Path sock = dir.resolve("vhost.sock");
        List<String> args = new ArrayList<>(List.of("--chardev", "socket,id=qmp0,path=" + qmp + ",server=on,wait=off",
                "--monitor", "chardev=qmp0",
                "--blockdev", "driver=file,node-name=file0,filename=" + img,
                "--blockdev", "driver=raw,node-name=disk0,file=file0",
                "--blockdev", "driver=null-co,node-name=null0,size=1048576",
                "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + sock
                        + ",writable=on"));
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true);
             MainLoop loop = new MainLoop("frontend", new LegacySwitches());
             RamRegion ram = RamRegion.memfd("fe-ram", 0, 1 << 20)) {
            GuestMemory mem = new GuestMemory(ram);
            VhostUserBlkFrontend fe = loop.watchdog(BOUND).call("connect", () -> VhostUserBlkFrontend.connect("fe",
                    sock, 1, 128, loop.context(), mem, BOUND));
            try {
                assertEquals(16384, fe.readConfig(0, 8), "the capacity at connect");
                CompletableFuture<Long> seen = new CompletableFuture<>();
                loop.run("watch", () -> AioWait.pollWhile(loop.context(), () -> fe.configChanges() == 0))
                        .thenRun(() -> seen.complete(fe.readConfig(0, 8)));

                c.ok("block_resize", "{\"node-name\": \"disk0\", \"size\": 33554432}");
                assertEquals(32L << 20, Files.size(img), "the host file grew");
                if (!StorageDaemonUnderTest.isQsd()) {
                    // qsd 7.2 never tells a vhost-user front-end of a resize (README, "Linux-guest tests"); vblk does
                    assertEquals(65536L, loop.watchdog(BOUND).await("the config change", seen), c.transcript());
                }

                assertEquals("Cannot find device='nope' nor node-name=''",
                        c.error("block_resize", "{\"device\": \"nope\", \"size\": 512}").path("desc").asText());
                assertEquals("Cannot find device='' nor node-name='nope'",
                        c.error("block_resize", "{\"node-name\": \"nope\", \"size\": 512}").path("desc").asText());
                assertEquals("Parameter 'size' expects a >0 size",
                        c.error("block_resize", "{\"node-name\": \"disk0\", \"size\": -1}").path("desc").asText());
                assertEquals(32L << 20, Files.size(img), "refused resizes leave the file alone");

                String refused = c.error("block_resize", "{\"node-name\": \"null0\", \"size\": 2097152}")
                        .path("desc").asText();
                assertTrue(refused.startsWith("Image format driver does not support resize"), refused);
                if (!StorageDaemonUnderTest.isQsd()) {
                    assertEquals(1, fe.configChanges(), "resizing another node tells this front-end nothing");
                }
            } finally {
                loop.watchdog(BOUND).run("close", fe::close);
            }
        }
    }
}
