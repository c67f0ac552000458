package io.vblk.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.RamRegion;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link VhostUserBlkServer#resized}: the back-end's capacity changes and
 * vblk's own front-end, which negotiated BACKEND_REQ, receives
 * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG on the back-end channel, re-reads the
 * config space and has the new capacity; requests past it are refused.
 */
class ResizeNotificationTest {
    private static final Duration BOUND = Duration.ofSeconds(30);

    @Test
    void aResizeReachesVblksFrontEndThroughTheBackEndChannel(@TempDir Path dir) throws Exception {
        Path img = HostileHarness.patterned(dir.resolve("d.raw"));
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(dir.resolve("s"), img,
                "raw"));
             MainLoop loop = new MainLoop("frontend", new LegacySwitches());
             RamRegion ram = RamRegion.memfd("fe-ram", 0, 1 << 20)) {
            GuestMemory mem = new GuestMemory(ram);
            VhostUserBlkFrontend fe = loop.watchdog(BOUND).call("connect", () -> VhostUserBlkFrontend.connect("fe",
                    srv.socket(), 1, 128, loop.context(), mem, BOUND));
            try {
                assertEquals(2048, fe.readConfig(0, 8), "the capacity at connect");
                CompletableFuture<Long> seen = new CompletableFuture<>();
                loop.run("watch", () -> io.vblk.aio.AioWait.pollWhile(loop.context(), () -> fe.configChanges() == 0))
                        .thenRun(() -> seen.complete(fe.readConfig(0, 8)));
                srv.resized(1024);
                assertEquals(1024L, loop.watchdog(BOUND).await("the config change", seen));
                assertEquals(1, fe.configChanges());
                assertEquals(1024, srv.device().capacitySectors());
                assertThrows(IllegalArgumentException.class, () -> srv.resized(4096), "past the image's end");
            } finally {
                loop.watchdog(BOUND).run("close", fe::close);
            }
            // a later front-end (one at a time: after this one left) reads the new size at connect
            try (VhostUserClient c = VhostUserClient.connect(srv.socket(), BOUND)) {
                byte[] cfg = c.getConfig(0, 8);
                assertEquals(1024, java.nio.ByteBuffer.wrap(cfg).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(0));
            }
        }
    }
}
