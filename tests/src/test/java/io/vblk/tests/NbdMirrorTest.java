package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.AioContextLock;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.job.BlockJobs;
import io.vblk.job.Job;
import io.vblk.job.JobOptions;
import io.vblk.nbd.NbdAddress;
import io.vblk.nbd.NbdExport;
import io.vblk.nbd.NbdServer;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Issue 22's acceptance: a qcow2 chain exported over NBD while a mirror job
 * copies it stays consistent. qemu-io writes through the export while the
 * (rate-limited) mirror copies, again while it is READY, and after the pivot
 * — when the export's backend serves the target. The export, and the target
 * image after everything closed, read exactly like a raw reference that got
 * the same writes.
 */
class NbdMirrorTest {
    private static final Duration OK = Duration.ofSeconds(120);

    private static String run(List<String> cmd) throws IOException, InterruptedException {
        Path log = Files.createTempFile("nbd-mirror", ".out");
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            assertTrue(p.waitFor(OK.toSeconds(), TimeUnit.SECONDS), String.join(" ", cmd) + " did not finish");
            String out = Files.readString(log, StandardCharsets.UTF_8);
            assertEquals(0, p.exitValue(), () -> String.join(" ", cmd) + " failed:\n" + out);
            assertFalse(out.contains("fail"), () -> String.join(" ", cmd) + ":\n" + out);
            return out;
        } finally {
            Files.deleteIfExists(log);
        }
    }

    private static List<String> qemuIo(String format, String target, String... commands) {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", format));
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(target);
        return cmd;
    }

    @Test
    void aQcow2ChainExportedWhileAMirrorRunsStaysConsistent(@TempDir Path dir) throws Exception {
        QemuImg.require();
        Path base = dir.resolve("base.qcow2");
        Path top = dir.resolve("top.qcow2");
        Path target = dir.resolve("target.qcow2");
        Path ref = dir.resolve("ref.raw");
        run(List.of("qemu-img", "create", "-q", "-f", "qcow2", base.toString(), "32M"));
        run(qemuIo("qcow2", base.toString(), "write -P 0x11 0 32M"));
        run(List.of("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "qcow2", top.toString()));
        run(qemuIo("qcow2", top.toString(), "write -P 0x22 4M 4M"));
        run(List.of("qemu-img", "create", "-q", "-f", "qcow2", target.toString(), "32M"));
        run(List.of("qemu-img", "convert", "-O", "raw", top.toString(), ref.toString()));
        String[] during = new String[16];
        for (int i = 0; i < during.length; i++) {
            during[i] = "write -P 0x" + Integer.toHexString(0x30 + i) + " " + (i * 2) + "M 512k";
        }
        String[] whileReady = {"write -P 0x44 20M 1M", "write -z 1M 64k"};
        String[] afterPivot = {"write -P 0x55 30M 1M", "read -P 0x55 30M 1M"};

        MainLoop loop = new MainLoop();
        BlockLayer layer = new BlockLayer(loop);
        IOThread io = loop.newIOThread("nbd-io");
        Watchdog wd = loop.watchdog(OK);
        Path sock = dir.resolve("nbd.sock");
        String uri = "nbd+unix:///disk?socket=" + sock;
        try (BlockJobs jobs = new BlockJobs(layer)) {
            BlockNode src = wd.call("open", () -> {
                BlockNode n = layer.openImage("top", top, "qcow2", false);
                layer.setAioContext(n, io.context());
                return n;
            });
            NbdServer server = wd.call("nbd-server-start", () -> NbdServer.start(layer, NbdAddress.unix(sock)));
            NbdExport e = wd.call("export", () -> server.addExport("disk", "mirrored", src, true));
            Process writer = new ProcessBuilder(qemuIo("raw", uri, during)).redirectErrorStream(true).start();
            Job j = wd.call("mirror", () -> {
                BlockNode t = layer.openImage("target", target, "qcow2", false);
                Job m = jobs.mirror("job0", src, t, null, JobOptions.defaults().withChunk(65536).withSpeed(8L << 20));
                t.unref();
                return m;
            });
            assertTrue(writer.waitFor(OK.toSeconds(), TimeUnit.SECONDS), "the writer finished");
            String wout = new String(writer.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertEquals(0, writer.exitValue(), wout);
            wd.await("mirror ready", j.ready());
            run(qemuIo("raw", uri, whileReady));
            wd.call("complete", () -> {
                jobs.complete("job0");
                return null;
            });
            assertEquals(0, (int) wd.await("mirror concluded", j.concluded()), j.describe());
            assertEquals("target", wd.call("root", () -> e.node().name()), "the export serves the mirror's target now");
            run(qemuIo("raw", uri, afterPivot));
            for (String[] writes : List.of(during, whileReady, afterPivot)) {
                run(qemuIo("raw", ref.toString(), writes));
            }
            run(List.of("qemu-img", "compare", "-f", "raw", "-F", "raw", uri, ref.toString()));
            wd.await("nbd-server-stop", wd.call("stop", server::stop));
            wd.call("close", () -> {
                try (AioContextLock.Held h = src.context().acquire()) {
                    src.unref();
                }
                return null;
            });
        } finally {
            io.close();
            layer.close();
            loop.close();
        }
        QemuImg.check(target);
        QemuImg.compare(target, ref);
        assertEquals(null, QemuImg.backingFile(target));
    }
}
