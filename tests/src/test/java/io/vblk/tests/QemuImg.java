package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs Debian's {@code qemu-img} for the job tests: {@code check} (a
 * consistent image and chain) and {@code compare} (the guest-visible
 * contents). A missing tool fails the test with the command that installs
 * it — nothing is skipped. Every run is bounded.
 */
final class QemuImg {
    private static final long TIMEOUT_S = 60;

    private QemuImg() {
    }

    record Result(int exit, String output) {
    }

    static void require() {
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String dir : path.split(File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir, "qemu-img"))) {
                return;
            }
        }
        fail("qemu-img is not installed, and the block job tests need it to check images: install Debian's qemu-utils "
                + "with 'apt-get install qemu-utils' (as root)");
    }

    static Result run(String... args) {
        require();
        List<String> cmd = new ArrayList<>();
        cmd.add("qemu-img");
        cmd.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            byte[] out;
            try (InputStream in = p.getInputStream()) {
                out = in.readAllBytes();
            }
            if (!p.waitFor(TIMEOUT_S, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                fail(String.join(" ", cmd) + " did not finish within " + TIMEOUT_S + " s");
            }
            return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new AssertionError("cannot run " + String.join(" ", cmd), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted running " + String.join(" ", cmd), e);
        }
    }

    /** {@code qemu-img check}: no corruption, no leaked clusters; fails the test otherwise. */
    static void check(Path image) {
        Result r = run("check", "-f", "qcow2", image.toString());
        if (r.exit() != 0) {
            fail("qemu-img check " + image + " exited " + r.exit() + ":\n" + r.output());
        }
    }

    /** {@code qemu-img compare}: the image (through its backing chain) reads exactly like the raw reference. */
    static void compare(Path image, Path rawReference) {
        Result r = run("compare", "-f", "qcow2", "-F", "raw", image.toString(), rawReference.toString());
        if (r.exit() != 0 && System.getProperty("keep") != null) {
            try {
                java.nio.file.Path keep = java.nio.file.Path.of(System.getProperty("keep"));
                java.nio.file.Files.createDirectories(keep);
                try (var st = java.nio.file.Files.list(image.getParent())) {
                    for (java.nio.file.Path f : (Iterable<java.nio.file.Path>) st::iterator) {
                        java.nio.file.Files.copy(f, keep.resolve(f.getFileName()),
                                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                    }
                }
            } catch (java.io.IOException e) {
                throw new AssertionError(e);
            }
        }
        if (r.exit() != 0) {
            fail("qemu-img compare " + image + " " + rawReference + " exited " + r.exit() + ":\n" + r.output());
        }
    }

    /** The backing file qemu-img reads from the image's header, or null. */
    static String backingFile(Path image) {
        Result r = run("info", "--output=json", "-f", "qcow2", image.toString());
        if (r.exit() != 0) {
            fail("qemu-img info " + image + " failed:\n" + r.output());
        }
        int i = r.output().indexOf("\"backing-filename\": \"");
        if (i < 0) {
            return null;
        }
        int s = i + "\"backing-filename\": \"".length();
        return r.output().substring(s, r.output().indexOf('"', s));
    }
}
