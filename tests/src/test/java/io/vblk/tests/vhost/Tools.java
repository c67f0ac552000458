package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * What the vhost-user acceptance tests need from the host: Debian's QEMU
 * binaries (missing ones fail the test with the command that installs them,
 * never skip it), a boot sector that prints a marker on COM1, and process
 * handling that never leaves a child behind.
 */
final class Tools {
    static final String INSTALL_HINT = "install them with: apt-get install -y qemu-system-x86 seabios qemu-utils "
            + "(qemu-storage-daemon comes with qemu-system-common, a dependency of qemu-system-x86)";
    static final Path SEABIOS = Path.of("/usr/share/seabios/bios-256k.bin");

    private Tools() {
    }

    /** The absolute path of {@code name} on PATH; fails the test with the install hint if missing. */
    static Path require(String name) {
        String path = System.getenv("PATH");
        if (path != null) {
            for (String dir : path.split(File.pathSeparator)) {
                Path p = Path.of(dir, name);
                if (Files.isExecutable(p)) {
                    return p;
                }
            }
        }
        fail(name + " is not installed (not on PATH); the vhost-user acceptance tests need it: " + INSTALL_HINT);
        return null;
    }

    static Path qemu() {
        Path q = require("qemu-system-x86_64");
        if (!Files.isReadable(SEABIOS)) {
            fail("SeaBIOS (" + SEABIOS + ") is not installed; " + INSTALL_HINT);
        }
        return q;
    }

    static Path storageDaemon() {
        return require("qemu-storage-daemon");
    }

    /**
     * A raw disk whose boot sector, in 16-bit real mode, prints {@code marker}
     * and CR LF on COM1 (port 0x3f8) and halts:
     * <pre>
     *   cli; xor ax,ax; mov ds,ax; cld; mov si,msg; mov dx,0x3f8
     * l: lodsb; test al,al; jz h; out dx,al; jmp l
     * h: hlt; jmp h
     * msg: db marker, 13, 10, 0
     * </pre>
     */
    static Path bootDisk(Path file, String marker, long size) throws IOException {
        byte[] code = {(byte) 0xfa, 0x31, (byte) 0xc0, (byte) 0x8e, (byte) 0xd8, (byte) 0xfc, (byte) 0xbe, 0x17, 0x7c,
            (byte) 0xba, (byte) 0xf8, 0x03, (byte) 0xac, (byte) 0x84, (byte) 0xc0, 0x74, 0x03, (byte) 0xee,
            (byte) 0xeb, (byte) 0xf8, (byte) 0xf4, (byte) 0xeb, (byte) 0xfd};
        byte[] msg = (marker + "\r\n\0").getBytes(StandardCharsets.US_ASCII);
        byte[] sector = new byte[512];
        System.arraycopy(code, 0, sector, 0, code.length);
        if (code.length + msg.length > 446) {
            throw new IllegalArgumentException("marker too long");
        }
        System.arraycopy(msg, 0, sector, code.length, msg.length); // msg at 0x7c00 + 23 = 0x7c17
        sector[510] = 0x55;
        sector[511] = (byte) 0xaa;
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ch.write(ByteBuffer.wrap(sector), 0);
            ch.truncate(size);
            ch.write(ByteBuffer.wrap(new byte[1]), size - 1);
        }
        return file;
    }

    /** The JVM running the tests, for a {@code vblk serve} child on the test class path. */
    static List<String> javaCommand(String mainClass, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(mainClass);
        cmd.addAll(List.of(args));
        return cmd;
    }

    /** SIGKILL and reap, bounded; for finally blocks. */
    static void kill(Process p) {
        if (p == null) {
            return;
        }
        p.descendants().forEach(ProcessHandle::destroyForcibly);
        p.destroyForcibly();
        try {
            p.waitFor(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** SIGTERM, then SIGKILL if it did not exit within {@code grace}; returns the exit code (or -1). */
    static int stop(Process p, Duration grace) {
        if (p == null) {
            return -1;
        }
        p.destroy();
        try {
            if (p.waitFor(grace.toMillis(), TimeUnit.MILLISECONDS)) {
                return p.exitValue();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        kill(p);
        return -1;
    }

    static String read(Path p) {
        try {
            return Files.exists(p) ? Files.readString(p, StandardCharsets.ISO_8859_1) : "(no " + p + ")";
        } catch (IOException e) {
            return "(cannot read " + p + ": " + e.getMessage() + ")";
        }
    }
}
