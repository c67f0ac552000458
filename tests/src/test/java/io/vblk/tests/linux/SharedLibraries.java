package io.vblk.tests.linux;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The shared libraries a host binary loads, as {@code ldd} resolves them
 * (the dynamic loader's own answer, RUNPATHs and all), so the initramfs can
 * carry them at the same paths. A static binary has none.
 */
final class SharedLibraries {
    private static final Pattern RESOLVED = Pattern.compile("^\\s*\\S+ => (/\\S+) \\(0x[0-9a-f]+\\)$");
    private static final Pattern LOADER = Pattern.compile("^\\s*(/\\S+) \\(0x[0-9a-f]+\\)$");

    private SharedLibraries() {
    }

    static List<Path> of(Path binary) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("ldd", binary.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IOException("ldd " + binary + " did not finish");
        }
        if (out.contains("not a dynamic executable") || out.contains("statically linked")) {
            return List.of();
        }
        if (p.exitValue() != 0 || out.contains("not found")) {
            throw new IOException("ldd " + binary + " failed (exit " + p.exitValue() + "):\n" + out);
        }
        List<Path> libs = new ArrayList<>();
        for (String line : out.split("\n")) {
            Matcher m = RESOLVED.matcher(line);
            Matcher l = LOADER.matcher(line);
            if (m.matches()) {
                libs.add(Path.of(m.group(1)));
            } else if (l.matches()) {
                libs.add(Path.of(l.group(1)));
            }
        }
        return libs;
    }
}
