package io.vblk.tests.linux;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Host binaries the Linux-guest harness uses, found on PATH (and sbin), and process clean-up. */
final class HostTools {
    private HostTools() {
    }

    /** The binary {@code name}; an IOException naming the Debian package that brings it if it is missing. */
    static Path require(String name, String debianPackage) throws IOException {
        String path = System.getenv().getOrDefault("PATH", "") + File.pathSeparator + "/usr/sbin:/sbin";
        for (String dir : path.split(File.pathSeparator)) {
            if (!dir.isEmpty()) {
                Path p = Path.of(dir, name);
                if (Files.isExecutable(p)) {
                    return p;
                }
            }
        }
        throw new IOException(name + " is not installed (apt-get install -y " + debianPackage + ")");
    }

    /** SIGKILL a process and its descendants and reap it, bounded; for close() and finally blocks. */
    static void kill(ProcessHandle p) {
        if (p == null) {
            return;
        }
        List<ProcessHandle> children = p.descendants().toList();
        p.destroyForcibly();
        children.forEach(ProcessHandle::destroyForcibly);
        try {
            p.onExit().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            // reaped or not, the test goes on; a zombie is reaped with the JVM
        }
    }
}
