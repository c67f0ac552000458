package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.EventNotifier;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;

import java.nio.file.Files;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.List;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * {@link LeftBehind} counts eventfds: an {@link EventNotifier} a run did not
 * close is named (so {@code scenario all} fails the scenario that leaked it),
 * and a closed machine — a two-queue disk on an IOThread and a main-loop
 * disk — leaves none.
 */
class LeftBehindEventfdTest {

    @Test
    void anUnclosedEventNotifierIsNamed() {
        Assumptions.assumeTrue(Files.isDirectory(Paths.get("/proc/self/fd")), "needs /proc/self/fd");
        LeftBehind before = LeftBehind.take();
        EventNotifier leaked = new EventNotifier();
        try {
            String all = String.join("\n", LeftBehind.take().since(before, Duration.ofMillis(200)));
            assertTrue(all.contains("1 eventfd descriptor(s) not closed"), all);
        } finally {
            leaked.close();
        }
        assertEquals(List.of(), LeftBehind.take().since(before, Duration.ofSeconds(5)));
    }

    @Test
    void aClosedMachineLeavesNothing() {
        LeftBehind before = LeftBehind.take();
        MachineConfig cfg = MachineConfig.of(1, 1, List.of(DiskSpec.nullDevice(1 << 20).withQueues(2)
                .withIothreads(MachineConfig.iothreadNames(1)), DiskSpec.nullDevice(1 << 20)));
        Machine.start(cfg).close();
        assertEquals(List.of(), LeftBehind.take().since(before, Duration.ofSeconds(5)));
    }
}
