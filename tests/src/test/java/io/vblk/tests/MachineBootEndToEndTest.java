package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlkDebugDriver;
import io.vblk.firmware.BootVerdict;
import io.vblk.guest.BootReport;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Booting images made by the test, and a reset in the middle of the firmware's MBR read (issue 6). */
@Tag("concurrency")
class MachineBootEndToEndTest {

    /** A 4 MiB image with two partitions (FAT32 and swap, neither active) and the boot signature. */
    static Path userImage(Path dir, boolean signed) throws Exception {
        ByteBuffer mbr = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
        mbr.position(446);
        mbr.put((byte) 0).put(new byte[3]).put((byte) 0x0c).put(new byte[3]).putInt(63).putInt(4000);
        mbr.put((byte) 0).put(new byte[3]).put((byte) 0x82).put(new byte[3]).putInt(4063).putInt(4000);
        if (signed) {
            mbr.position(510);
            mbr.put((byte) 0x55).put((byte) 0xaa);
        }
        Path p = dir.resolve(signed ? "user.img" : "unsigned.img");
        byte[] image = new byte[4 << 20];
        System.arraycopy(mbr.array(), 0, image, 0, 512);
        Files.write(p, image);
        return p;
    }

    @ParameterizedTest(name = "iothreads={0} vcpus={1}")
    @CsvSource({"0,1", "1,1", "0,2", "2,2"})
    void bootsAUserImage(int iothreads, int vcpus, @TempDir Path dir) throws Exception {
        DiskSpec disk = DiskSpec.image(userImage(dir, true), null).withReadOnly(true)
                .withIothreads(MachineConfig.iothreadNames(iothreads));
        try (Machine m = Machine.start(MachineConfig.of(vcpus, iothreads, List.of(disk)))) {
            BootReport r = m.boot();
            assertEquals(BootVerdict.MBR_OK, r.verdict(), r.console().toString());
            assertTrue(r.console().contains("vblk-bios: partition 1: type 0x0c start 63 sectors 4000"), r.console().toString());
            assertTrue(r.console().contains("vblk-bios: partition 2: type 0x82 start 4063 sectors 4000"), r.console().toString());
            assertTrue(r.console().contains("vblk-bios: found virtio-blk 00:04.0: 8192 sectors (4 MiB)"), r.console().toString());
        }
    }

    @ParameterizedTest(name = "dataplane={0}")
    @ValueSource(booleans = {false, true})
    void anUnsignedDiskIsReportedNotBooted(boolean dataplane, @TempDir Path dir) throws Exception {
        DiskSpec disk = DiskSpec.image(userImage(dir, false), "raw").withIothreads(dataplane ? List.of("io0") : List.of());
        try (Machine m = Machine.start(MachineConfig.of(1, 1, List.of(disk)))) {
            BootReport r = m.boot();
            assertEquals(BootVerdict.NO_BOOT_SIGNATURE, r.verdict());
            assertTrue(r.console().contains("vblk-bios: no bootable signature (found 0x0000, want 0xaa55)"),
                    r.console().toString());
        }
    }

    /**
     * A system reset while the firmware's MBR read is in the backend: the reset
     * waits for it (held at a blkdebug suspension, then released), its late
     * completion is not written into the new rings, and the next boot reads the MBR.
     */
    @ParameterizedTest(name = "dataplane={0}")
    @ValueSource(booleans = {false, true})
    void aResetDuringTheMbrReadLeavesTheNextBootIntact(boolean dataplane, @TempDir Path dir) throws Exception {
        DiskSpec disk = DiskSpec.image(userImage(dir, true), "raw").withErrorInjection()
                .withIothreads(dataplane ? List.of("io0") : List.of());
        try (Machine m = Machine.start(MachineConfig.of(1, 1, List.of(disk)))) {
            BlkDebugDriver dbg = (BlkDebugDriver) m.disk(0).backend().root().driver();
            BlkDebugDriver.Suspension mbrRead = dbg.suspend("mbr-read", BlkDebugDriver.Op.READ, 0, 512);
            CompletableFuture<BootVerdict> firstBoot = m.startFirmware();
            m.await("the MBR read held in the backend", mbrRead.reached(), Duration.ofSeconds(60));
            CompletableFuture<CompletableFuture<BootVerdict>> reset = m.mainLoop().submit("system reset", m::systemReset);
            m.await("the firmware's vCPU stopped", firstBoot.handle((v, e) -> e), Duration.ofSeconds(60));
            assertFalse(reset.isDone(), "the reset waits for the read in flight");
            mbrRead.resume();
            BootReport second = m.awaitBoot(m.await("reset", reset, Duration.ofSeconds(60)));
            assertEquals(BootVerdict.MBR_OK, second.verdict(), second.console().toString());
            assertEquals(1, m.resets());
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
        }
    }
}
