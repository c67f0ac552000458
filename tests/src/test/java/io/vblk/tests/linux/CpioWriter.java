package io.vblk.tests.linux;

import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

/**
 * Writes a cpio archive in the "newc" format (magic 070701), the one the
 * kernel unpacks as an initramfs (Documentation/driver-api/early-userspace/
 * buffer-format.rst): a 110-byte ASCII-hex header, the NUL-terminated name
 * and the data, each padded to four bytes, ended by {@code TRAILER!!!}.
 * Parent directories are added once, before their first entry.
 */
final class CpioWriter implements AutoCloseable {
    static final int S_IFDIR = 0040000;
    static final int S_IFREG = 0100000;
    static final int S_IFLNK = 0120000;
    static final int S_IFCHR = 0020000;

    private final OutputStream out;
    private final Set<String> dirs = new HashSet<>();
    private long written;
    private int ino = 1;

    CpioWriter(OutputStream out) {
        this.out = new BufferedOutputStream(out, 1 << 20);
    }

    /** A directory (and its parents). {@code path} is relative, without a leading slash. */
    void directory(String path) throws IOException {
        if (path.isEmpty() || dirs.contains(path)) {
            return;
        }
        parents(path);
        dirs.add(path);
        entry(path, S_IFDIR | 0755, 2, 0, 0, new byte[0]);
    }

    /** A regular file with the content of {@code source} (symbolic links followed). */
    void file(String path, Path source, int perm) throws IOException {
        parents(path);
        entry(path, S_IFREG | perm, 1, 0, 0, Files.readAllBytes(source));
    }

    void file(String path, byte[] content, int perm) throws IOException {
        parents(path);
        entry(path, S_IFREG | perm, 1, 0, 0, content);
    }

    void symlink(String path, String target) throws IOException {
        parents(path);
        entry(path, S_IFLNK | 0777, 1, 0, 0, target.getBytes(StandardCharsets.UTF_8));
    }

    void charDevice(String path, int perm, int major, int minor) throws IOException {
        parents(path);
        entry(path, S_IFCHR | perm, 1, major, minor, new byte[0]);
    }

    private void parents(String path) throws IOException {
        int slash = path.lastIndexOf('/');
        if (slash > 0) {
            directory(path.substring(0, slash));
        }
    }

    private void entry(String name, int mode, int nlink, int rdevMajor, int rdevMinor, byte[] data)
            throws IOException {
        byte[] n = (name + "\0").getBytes(StandardCharsets.UTF_8);
        StringBuilder h = new StringBuilder("070701");
        for (long field : new long[] {ino++, mode, 0, 0, nlink, 0, data.length, 0, 0, rdevMajor, rdevMinor, n.length,
            0}) {
            h.append(String.format("%08x", field));
        }
        write(h.toString().getBytes(StandardCharsets.US_ASCII));
        write(n);
        pad();
        write(data);
        pad();
    }

    private void write(byte[] b) throws IOException {
        out.write(b);
        written += b.length;
    }

    private void pad() throws IOException {
        while (written % 4 != 0) {
            out.write(0);
            written++;
        }
    }

    @Override
    public void close() throws IOException {
        entry("TRAILER!!!", 0, 1, 0, 0, new byte[0]);
        out.close();
    }
}
