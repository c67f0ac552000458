package io.vblk.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** The checks a user's image passes before vblk opens it, each failure a one-line message. */
final class ImageChecks {
    private ImageChecks() {
    }

    /** Null if {@code p} can be booted from, else why not. */
    static String check(Path p) {
        if (!Files.exists(p)) {
            return "image '" + p + "' does not exist";
        }
        if (Files.isDirectory(p)) {
            return "image '" + p + "' is a directory, not a disk image";
        }
        if (!Files.isReadable(p)) {
            return "image '" + p + "' is not readable (check its permissions)";
        }
        try {
            long size = Files.size(p);
            if (size < 512) {
                return "image '" + p + "' is " + size + " bytes, smaller than one 512-byte sector";
            }
        } catch (IOException e) {
            return "cannot read the size of '" + p + "': " + e.getMessage();
        }
        return null;
    }
}
