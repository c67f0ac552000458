package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import io.vblk.guest.GuestWorkload;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;

/** The start and end every machine test with the Linux-like guest's verified I/O shares. */
public final class GuestRuns {
    private GuestRuns() {
    }

    /** {@code dir/disk.raw}, {@code size} bytes of zeroes (sparse). */
    public static Path blankImage(Path dir, long size) throws IOException {
        Path p = dir.resolve("disk.raw");
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
        return p;
    }

    /** Stops the run, waits for every workload to drain, and checks no request failed or read back wrong. */
    public static void finish(Machine m, AtomicBoolean stop, LinuxGuest.Run run, Duration bound) {
        stop.set(true);
        for (CompletableFuture<Void> f : run.done()) {
            m.await("guest workload", f, bound);
        }
        assertNull(run.firstProblem(), run.firstProblem());
        for (GuestWorkload w : run.workloads()) {
            assertEquals(0, w.stats.errors);
            assertEquals(0, w.stats.mismatches);
        }
    }
}
