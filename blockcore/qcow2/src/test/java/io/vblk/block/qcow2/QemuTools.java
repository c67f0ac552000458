package io.vblk.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
 * Runs Debian's qemu-utils ({@code qemu-img}, {@code qemu-io}) for the
 * interoperability tests. A missing tool fails the test with the command
 * that installs it: nothing is skipped silently. Every run is bounded.
 */
final class QemuTools {
    private static final long TIMEOUT_S = 60;

    private QemuTools() {
    }

    /** Fails (never skips) when qemu-img or qemu-io is not installed. */
    static void require() {
        for (String tool : new String[] {"qemu-img", "qemu-io"}) {
            if (find(tool) == null) {
                fail(tool + " is not installed, and the qcow2 interoperability tests need it: install Debian's "
                        + "qemu-utils with 'apt-get install qemu-utils' (as root)");
            }
        }
    }

    private static Path find(String tool) {
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String dir : path.split(File.pathSeparator)) {
            Path p = Path.of(dir, tool);
            if (Files.isExecutable(p)) {
                return p;
            }
        }
        return null;
    }

    record Result(int exit, String output) {
    }

    static Result run(String... cmd) {
        require();
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        try {
            Process p = pb.start();
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

    /** Runs qemu-img and expects success. */
    static String img(String... args) {
        String[] cmd = new String[args.length + 1];
        cmd[0] = "qemu-img";
        System.arraycopy(args, 0, cmd, 1, args.length);
        Result r = run(cmd);
        assertEquals(0, r.exit(), () -> String.join(" ", cmd) + " failed:\n" + r.output());
        return r.output();
    }

    /** qemu-img create -f qcow2 with options (cluster size, backing file and format). */
    static void create(Path img, long size, int clusterSize, Path backing, String backingFormat, String... extraOpts) {
        List<String> cmd = new ArrayList<>(List.of("create", "-q", "-f", "qcow2"));
        StringBuilder o = new StringBuilder("cluster_size=" + clusterSize);
        for (String x : extraOpts) {
            o.append(',').append(x);
        }
        cmd.add("-o");
        cmd.add(o.toString());
        if (backing != null) {
            cmd.add("-b");
            cmd.add(backing.toString());
            cmd.add("-F");
            cmd.add(backingFormat);
        }
        cmd.add(img.toString());
        cmd.add(Long.toString(size));
        img(cmd.toArray(new String[0]));
    }

    /** Runs qemu-io commands on an image and expects every one to succeed (including pattern checks). */
    static String io(Path img, String format, String... commands) {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", format));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(img.toString());
        Result r = run(cmd.toArray(new String[0]));
        String what = String.join(" ", cmd);
        assertEquals(0, r.exit(), () -> what + " failed:\n" + r.output());
        assertFalse(r.output().contains("failed") || r.output().contains("error"), () -> what + " reported:\n"
                + r.output());
        return r.output();
    }

    /** qemu-img check: no corruption, no leak, no error (exit status 0). */
    static void check(Path img) {
        Result r = run("qemu-img", "check", img.toString());
        assertEquals(0, r.exit(), () -> "qemu-img check " + img + " found problems:\n" + r.output());
    }

    /** qemu-img compare of a qcow2 image against a raw reference: identical contents. */
    static void compareWithRaw(Path img, Path raw) {
        Result r = run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", img.toString(), raw.toString());
        assertEquals(0, r.exit(), () -> "qemu-img compare " + img + " " + raw + ":\n" + r.output());
    }

    /** The share of compressed clusters qemu-img check reports. */
    static double compressedPercent(Path img) {
        String out = img("check", img.toString());
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("([0-9.]+)% compressed clusters").matcher(out);
        if (!m.find()) {
            throw new AssertionError("qemu-img check printed no compression statistics:\n" + out);
        }
        return Double.parseDouble(m.group(1));
    }
}
