package io.vblk.block;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A loop block device over a file, for tests of the {@code file} driver on a
 * real block device ({@code BLKSSZGET}, {@code BLKDISCARD}): attached with
 * {@code losetup} (with a chosen logical sector size), detached on close.
 *
 * <p>Loop devices need root and {@code /dev/loop-control}. Where they are
 * missing the tests are skipped with an assumption that says why, unless the
 * system property {@value #REQUIRED} is {@code true}, which makes the absence
 * a failure (for CI machines that are known to have them).
 */
final class LoopDevice implements AutoCloseable {
    /** {@code -Dvblk.test.loopDevices.required=true}: no loop device is a failure, not a skip. */
    static final String REQUIRED = "vblk.test.loopDevices.required";

    final Path device;
    final Path backing;

    private LoopDevice(Path device, Path backing) {
        this.device = device;
        this.backing = backing;
    }

    /** Why loop devices cannot be used here, or null. */
    static String unavailableReason() {
        if (!Files.exists(Path.of("/dev/loop-control"))) {
            return "no /dev/loop-control (loop module not loaded, or a container without it)";
        }
        if (!Files.isWritable(Path.of("/dev/loop-control"))) {
            return "/dev/loop-control is not writable (not root)";
        }
        try {
            Result r = run("losetup", "--version");
            if (r.rc != 0) {
                return "losetup does not run: " + r.out;
            }
        } catch (IOException e) {
            return "no losetup: " + e.getMessage();
        }
        return null;
    }

    /** Skips the test (or fails it, with {@value #REQUIRED}) when loop devices are unavailable. */
    static void assumeAvailable() {
        String why = unavailableReason();
        if (why == null) {
            return;
        }
        String msg = "loop devices unavailable: " + why;
        if (Boolean.getBoolean(REQUIRED)) {
            fail(msg + " (and -D" + REQUIRED + "=true demands them)");
        }
        assumeTrue(false, msg + "; the block-device tests are skipped (-D" + REQUIRED + "=true makes this a failure)");
    }

    /** Attaches {@code backing} to a free loop device with {@code sectorSize}-byte logical blocks. */
    static LoopDevice attach(Path backing, int sectorSize) throws IOException {
        assumeAvailable();
        Result r = run("losetup", "--find", "--show", "--sector-size", Integer.toString(sectorSize),
                backing.toString());
        if (r.rc != 0) {
            String msg = "losetup could not attach " + backing + ": " + r.out;
            if (Boolean.getBoolean(REQUIRED)) {
                fail(msg);
            }
            assumeTrue(false, msg);
        }
        return new LoopDevice(Path.of(r.out.trim()), backing);
    }

    /** The block device's name in sysfs ({@code loop3}). */
    String name() {
        return device.getFileName().toString();
    }

    /**
     * Sectors (512 bytes) the device has discarded: field 14 of
     * {@code /sys/block/NAME/stat}. BLKDISCARD counts there; a fallocate on
     * the device (write-zeroes) does not.
     */
    long discardedSectors() throws IOException {
        String[] f = Files.readString(Path.of("/sys/block", name(), "stat")).trim().split("\\s+");
        return Long.parseLong(f[13]);
    }

    /** Detaches the device (the loop driver writes back what it cached first). */
    @Override
    public void close() throws IOException {
        Result r = run("losetup", "-d", device.toString());
        if (r.rc != 0) {
            throw new IOException("losetup -d " + device + ": " + r.out);
        }
    }

    private record Result(int rc, String out) {
    }

    private static Result run(String... cmd) throws IOException {
        List<String> c = new ArrayList<>(List.of(cmd));
        Process p = new ProcessBuilder(c).redirectErrorStream(true).start();
        try {
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(String.join(" ", cmd) + " did not end in 30 s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
            throw new IOException("interrupted: " + String.join(" ", cmd), e);
        }
        return new Result(p.exitValue(), new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
    }
}
