package io.vblk.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.firmware.BootVerdict;

import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.io.TempDir;

class MachineBootTest {

    @ParameterizedTest(name = "iothreads={0} vcpus={1}")
    @CsvSource({"0,1", "1,1", "1,2", "2,2"})
    void bootsTheDefaultDisk(int iothreads, int vcpus, @TempDir Path dir) throws Exception {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        DiskSpec disk = DiskSpec.image(img, "raw").withIothreads(MachineConfig.iothreadNames(iothreads));
        try (Machine m = Machine.start(MachineConfig.of(vcpus, iothreads, List.of(disk)))) {
            BootReport r = m.boot();
            assertEquals(BootVerdict.MBR_OK, r.verdict(), String.join("\n", r.console()));
            assertTrue(r.console().contains("vblk-bios: booting from virtio-blk 00:04.0"), r.console().toString());
            assertTrue(r.console().contains("vblk-bios: partition 1: type 0x83 active start 2048 sectors 129024"),
                    r.console().toString());
            assertEquals(BootVerdict.MBR_OK.code(), m.lastDebugExit());
            assertEquals(iothreads > 0, m.disk(0).dataplane() != null && m.disk(0).dataplane().isStarted());
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
        }
    }
}
