package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * How the harness finds its kernel: the newest complete version in the
 * cache (numbers compared as numbers, half-unpacked ones ignored), else what
 * the fetch script leaves there — and when the script fails, its own reason
 * reaches the test's failure message. No network, no QEMU.
 */
class GuestKernelTest {

    @Test
    void versionsCompareTheirNumbersAsNumbers() {
        assertTrue(GuestKernel.compareVersions("6.1.0-9-cloud-amd64", "6.1.0-10-cloud-amd64") < 0);
        assertTrue(GuestKernel.compareVersions("6.1.0-57-cloud-amd64", "6.1.0-56-cloud-amd64") > 0);
        assertEquals(0, GuestKernel.compareVersions("6.1.0-57-cloud-amd64", "6.1.0-57-cloud-amd64"));
    }

    @Test
    void theNewestCompleteVersionInTheCacheIsUsed(@TempDir Path cache) throws Exception {
        complete(cache, "6.1.0-9-cloud-amd64");
        complete(cache, "6.1.0-10-cloud-amd64");
        Files.createDirectories(cache.resolve("kernel/6.1.0-11-cloud-amd64")); // no .complete: a fetch cut short
        GuestKernel k = GuestKernel.locate(cache, cache.resolve("no-script"));
        assertEquals("6.1.0-10-cloud-amd64", k.version());
        assertEquals(cache.resolve("kernel/6.1.0-10-cloud-amd64/boot/vmlinuz-6.1.0-10-cloud-amd64"), k.vmlinuz());
    }

    @Test
    void anEmptyCacheIsFilledByTheFetchScript(@TempDir Path dir) throws Exception {
        Path cache = dir.resolve("cache");
        Path script = script(dir, "mkdir -p \"$1/kernel/6.1.0-3-cloud-amd64\" && touch \"$1/kernel/6.1.0-3-cloud-amd64/"
                + ".complete\" && echo \"$1/kernel/6.1.0-3-cloud-amd64\"");
        assertEquals("6.1.0-3-cloud-amd64", GuestKernel.locate(cache, script).version());
    }

    @Test
    void aFailingFetchSaysWhy(@TempDir Path dir) throws Exception {
        Path script = script(dir, "echo 'fetch-kernel: the apt index names no linux-image-6.1.0-*-cloud-amd64' >&2; "
                + "exit 1");
        IOException e = assertThrows(IOException.class, () -> GuestKernel.locate(dir.resolve("cache"), script));
        assertTrue(e.getMessage().contains("failed (exit 1)")
                && e.getMessage().contains("the apt index names no linux-image"), e.getMessage());
    }

    private static void complete(Path cache, String version) throws IOException {
        Path d = Files.createDirectories(cache.resolve("kernel").resolve(version));
        Files.createFile(d.resolve(".complete"));
    }

    private static Path script(Path dir, String body) throws IOException {
        Path s = dir.resolve("fetch.sh");
        Files.writeString(s, "#!/bin/sh\n" + body + "\n");
        Files.setPosixFilePermissions(s, PosixFilePermissions.fromString("rwxr-xr-x"));
        return s;
    }
}
