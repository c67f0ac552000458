package io.vblk.guest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.firmware.BootVerdict;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class LinuxDriverTest {

    @ParameterizedTest(name = "iothreads={0} queues={1} eventIdx={2} poll={3}")
    @CsvSource({"0,1,true,false", "1,1,true,false", "1,2,true,false", "2,2,true,false", "1,2,false,false",
            "1,2,true,true"})
    void verifiedRandomReadWriteOverEveryQueue(int iothreads, int queues, boolean eventIdx, boolean poll,
                                               @TempDir Path dir) throws Exception {
        Path img = dir.resolve("disk.raw");
        Files.write(img, new byte[0]);
        try (java.io.RandomAccessFile f = new java.io.RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(32L << 20);
        }
        DiskSpec disk = DiskSpec.image(img, "raw").withQueues(queues).withIothreads(MachineConfig.iothreadNames(iothreads));
        try (Machine m = Machine.start(MachineConfig.of(queues, iothreads, List.of(disk)))) {
            assertEquals(BootVerdict.NO_BOOT_SIGNATURE, m.boot().verdict(), "a blank disk has no boot signature");
            LinuxGuest g = LinuxGuest.probe(m, 0, queues, 256, eventIdx);
            assertEquals(queues, g.driver().numQueues());
            GuestWorkload.Spec spec = new GuestWorkload.Spec(16, 4096, io.vblk.guest.IoPattern.parse("randrw"), true, poll);
            LinuxGuest.Run[] run = new LinuxGuest.Run[1];
            run[0] = g.start(spec, () -> run[0] != null && run[0].completed() >= 4000L * queues, null, 11);
            for (CompletableFuture<Void> f : run[0].done()) {
                m.await("workload", f, Duration.ofSeconds(60));
            }
            assertNull(run[0].firstProblem(), run[0].firstProblem());
            assertTrue(run[0].completed() >= 4000L * queues);
            for (GuestWorkload w : run[0].workloads()) {
                assertEquals(0, w.stats.errors);
                assertEquals(0, w.stats.mismatches);
            }
            if (!poll) {
                assertEquals(queues, m.await("one request per queue, then its interrupt",
                        g.interruptOnEveryQueue(Duration.ofSeconds(30)), Duration.ofSeconds(60)),
                        "completions arrive by MSI-X");
            }
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
        }
    }
}
