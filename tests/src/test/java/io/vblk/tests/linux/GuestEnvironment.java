package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

import org.junit.jupiter.api.Assumptions;

/**
 * What every Linux-guest test needs from the host: QEMU, the cached cloud
 * kernel and the initramfs built from the host's busybox, fio and e2fsprogs.
 * Found (or built) once per JVM. When something is missing the test FAILS
 * with what to install — CI must not pass by skipping — unless the developer
 * opted out with {@code -Dvblk.linuxGuest=off} (or {@code
 * VBLK_LINUX_GUEST=off}), which skips the tests and says so.
 */
public record GuestEnvironment(Path qemu, Path storageDaemon, GuestKernel kernel, Path initramfs) {
    /** The opt-out: system property {@value}, or environment variable VBLK_LINUX_GUEST, set to "off". */
    public static final String SWITCH = "vblk.linuxGuest";
    private static GuestEnvironment found;
    private static String problem;

    /** The environment, or the test fails (or is skipped, when opted out) saying what is missing. */
    public static synchronized GuestEnvironment require() {
        String sw = System.getProperty(SWITCH, System.getenv().getOrDefault("VBLK_LINUX_GUEST", "on"));
        Assumptions.assumeFalse(sw.toLowerCase(Locale.ROOT).equals("off"),
                "Linux-guest tests switched off (-D" + SWITCH + "=off or VBLK_LINUX_GUEST=off)");
        if (found == null && problem == null) {
            try {
                found = locate();
            } catch (IOException e) {
                problem = e.getMessage();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                problem = "interrupted while preparing the Linux guest";
            }
        }
        if (problem != null) {
            fail("the Linux guest cannot be set up: " + problem + "\n./vblk test installs and fetches everything "
                    + "(Debian: apt-get install -y qemu-system-x86 busybox-static fio e2fsprogs; then "
                    + "tests/linux-guest/fetch-kernel.sh); a developer without network can skip these tests with -D"
                    + SWITCH + "=off");
        }
        return found;
    }

    /** The kernel and initramfs cache: {@code -Dvblk.linuxGuest.cache}, VBLK_LINUX_GUEST_CACHE, or ~/.cache/vblk/linux-guest. */
    static Path cache() {
        String p = System.getProperty(SWITCH + ".cache", System.getenv("VBLK_LINUX_GUEST_CACHE"));
        if (p != null && !p.isBlank()) {
            return Path.of(p);
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        Path base = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".cache");
        return base.resolve("vblk").resolve("linux-guest");
    }

    /** The tests module's directory (surefire runs there; an IDE may run from the checkout's root). */
    static Path moduleDir() {
        Path here = Path.of(System.getProperty("basedir", System.getProperty("user.dir"))).toAbsolutePath();
        return Files.isDirectory(here.resolve("linux-guest")) ? here : here.resolve("tests");
    }

    private static GuestEnvironment locate() throws IOException, InterruptedException {
        Path qemu = HostTools.require("qemu-system-x86_64", "qemu-system-x86");
        Path qsd = HostTools.require("qemu-storage-daemon", "qemu-system-x86");
        Path cache = Files.createDirectories(cache());
        GuestKernel kernel = GuestKernel.locate(cache, moduleDir().resolve("linux-guest/fetch-kernel.sh"));
        Path initramfs = GuestInitramfs.build(kernel, cache);
        return new GuestEnvironment(qemu, qsd, kernel, initramfs);
    }
}
