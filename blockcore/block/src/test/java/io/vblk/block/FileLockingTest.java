package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * OFD image locking as QEMU's raw-posix takes it, checked against vblk
 * itself and against QEMU's own tools (qemu-img, qemu-io), which read the
 * same lock bytes.
 */
class FileLockingTest {
    @TempDir
    Path dir;

    private static final FileOptions STRICT = FileOptions.defaults().withLocking(FileOptions.Locking.ON);

    @Test
    void aSecondWriterIsRefusedReadersShareAndLockingOffAllowsSharing() throws Exception {
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[65536]);
        try (BlockTestSupport t = new BlockTestSupport()) {
            t.main("locks", () -> {
                BlockNode w = t.layer.openFile("w", img, STRICT);
                BlockException e = assertThrows(BlockException.class, () -> t.layer.openFile("w2", img, STRICT));
                assertTrue(e.getMessage().contains("lock on '" + img + "': is another process using the image?"),
                        e.getMessage());
                assertThrows(BlockException.class, () -> t.layer.openFile("r", img, STRICT.withReadOnly(true)),
                        "a consistent reader cannot share with a writer");
                BlockNode off = t.layer.openFile("off", img, STRICT.withLocking(FileOptions.Locking.OFF));
                off.unref();
                w.unref();
                BlockNode r1 = t.layer.openFile("r1", img, STRICT.withReadOnly(true));
                BlockNode r2 = t.layer.openFile("r2", img, STRICT.withReadOnly(true));
                assertThrows(BlockException.class, () -> t.layer.openFile("w3", img, STRICT), "readers exclude writers");
                r1.unref();
                r2.unref();
                BlockNode again = t.layer.openFile("again", img, STRICT);
                again.unref();
            });
        }
    }

    private static boolean have(String tool) {
        for (String d : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
            if (Files.isExecutable(Path.of(d, tool))) {
                return true;
            }
        }
        return false;
    }

    private static String run(List<String> cmd) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "qemu tool finished: " + cmd);
        return p.exitValue() + ":" + out;
    }

    /**
     * What QEMU's tools do when vblk has an image open read-write: a writer
     * (qemu-io) is refused its "write" lock; {@code qemu-img info} of a qcow2
     * image (consistent read, write unshared) is refused its shared "write"
     * lock; both work with {@code -U} (force share) and once vblk closed it.
     */
    @Test
    void qemuToolsCannotWriteOrInspectAnImageVblkHolds() throws Exception {
        assumeTrue(have("qemu-img") && have("qemu-io"), "qemu-utils not installed (./vblk test installs them)");
        Path img = dir.resolve("d.qcow2");
        assertTrue(run(List.of("qemu-img", "create", "-f", "qcow2", img.toString(), "1M")).startsWith("0:"));
        List<String> write = List.of("qemu-io", "-f", "qcow2", "-c", "write 0 512", img.toString());
        List<String> info = List.of("qemu-img", "info", "-f", "qcow2", img.toString());
        try (BlockTestSupport t = new BlockTestSupport()) {
            BlockNode n = t.main("open", () -> t.layer.openFile("f", img, FileOptions.defaults()));
            String w = run(write);
            assertTrue(!w.startsWith("0:") && w.contains("Failed to get \"write\" lock"), w);
            String i = run(info);
            assertTrue(!i.startsWith("0:") && i.contains("Failed to get shared \"write\" lock"), i);
            String shared = run(List.of("qemu-img", "info", "-U", "-f", "qcow2", img.toString()));
            assertTrue(shared.startsWith("0:"), "qemu-img -U (force share) still works: " + shared);
            t.main("close", n::unref);
        }
        assertTrue(run(info).startsWith("0:"), "free again");
        assertTrue(run(write).startsWith("0:"), "free again");
    }

    @Test
    void vblkCannotOpenAnImageQemuIoHolds() throws Exception {
        assumeTrue(have("qemu-io"), "qemu-io not installed (./vblk test installs qemu-utils)");
        Path img = BlockTestSupport.tempImage(dir, "d.raw", new byte[65536]);
        Process q = new ProcessBuilder("qemu-io", "-f", "raw", img.toString()).redirectErrorStream(true).start();
        try (Writer in = new OutputStreamWriter(q.getOutputStream(), StandardCharsets.UTF_8);
                BufferedReader out = new BufferedReader(new InputStreamReader(q.getInputStream(), StandardCharsets.UTF_8))) {
            in.write("read 0 512\n");
            in.flush();
            String line;
            StringBuilder seen = new StringBuilder();
            while ((line = out.readLine()) != null && !line.contains("read 512/512 bytes")) {
                seen.append(line).append('\n'); // qemu-io has the image open (and locked) once it answered
            }
            assertNotEquals(null, line, "qemu-io answered: " + seen);
            try (BlockTestSupport t = new BlockTestSupport()) {
                BlockException e = assertThrows(BlockException.class,
                        () -> t.main("open", () -> t.layer.openFile("f", img, FileOptions.defaults())));
                assertTrue(e.getMessage().contains("is another process using the image?"), e.getMessage());
                BlockNode off = t.main("open unlocked",
                        () -> t.layer.openFile("off", img, FileOptions.defaults().withLocking(FileOptions.Locking.OFF)));
                t.main("close", off::unref);
            }
            in.write("quit\n");
            in.flush();
        } finally {
            assertTrue(q.waitFor(60, TimeUnit.SECONDS), "qemu-io quits");
        }
        assertEquals(0, q.exitValue());
    }
}
