package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.firmware.BootVerdict;
import io.vblk.guest.BootReport;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.IoPattern;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.vhost.VhostUserBlkServer;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The simulated machine's vhost-user-blk front-end against an in-process {@code vblk serve}. */
class SimulatedMachineOverVblkServeTest {

    @Test
    void firmwareBootsThroughVhostUser(@TempDir Path dir) throws Exception {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        Path sock = dir.resolve("vblk.sock");
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(sock, img, "raw"));
             Machine m = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock))))) {
            BootReport r = m.boot();
            assertEquals(BootVerdict.MBR_OK, r.verdict(), String.join("\n", r.console()));
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }
}
