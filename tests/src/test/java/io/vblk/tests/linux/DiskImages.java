package io.vblk.tests.linux;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/** Raw disk images for the Linux guest, and what the host's file system says about them. */
public final class DiskImages {
    private DiskImages() {
    }

    /** A sparse raw image of {@code mib} MiB (all zeroes, nothing allocated). */
    public static Path sparse(Path file, int mib) throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength((long) mib << 20);
        }
        return file;
    }

    /** The space the host allocates to {@code file}, in KiB ({@code du -k}): what a discard gives back. */
    public static long allocatedKiB(Path file) throws IOException, InterruptedException {
        Process p = new ProcessBuilder("du", "-k", file.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("du -k " + file + " failed: " + out);
        }
        return Long.parseLong(out.split("\\s+")[0]);
    }
}
