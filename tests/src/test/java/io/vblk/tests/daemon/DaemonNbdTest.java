package io.vblk.tests.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.vblk.guest.DiskSpec;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The daemon's NBD server and NBD exports driven as qemu-storage-daemon's
 * are: {@code --nbd-server} and {@code --export type=nbd} on the command
 * line, {@code nbd-server-start}, {@code block-export-add type=nbd},
 * {@code block-export-del} and {@code nbd-server-stop} over QMP, with QEMU's
 * own NBD client ({@code qemu-io}, {@code qemu-img}) on the other end. With
 * {@code -Dvblk.daemon=qsd} the same tests run against qemu-storage-daemon.
 */
class DaemonNbdTest {
    private static final int MIB = 1 << 20;

    /** A local raw file holding what the tests write through NBD, to compare with. */
    private static Path reference(Path dir, long size, String... commands) throws Exception {
        Path ref = DaemonQmpTest.blank(dir.resolve("ref.raw"), size);
        QemuTool.qemuIo(ref.toString(), commands);
        return ref;
    }

    /** One export of a {@code query-block-exports} reply (qsd lists the newest first). */
    private static JsonNode byId(JsonNode exports, String id) {
        for (JsonNode e : exports) {
            if (e.path("id").asText().equals(id)) {
                return e;
            }
        }
        fail("no export '" + id + "' in " + exports);
        return null;
    }

    @Test
    void commandLineExportsServeQemuIoAndQemuImg(@TempDir Path dir) throws Exception {
        Path img = DaemonQmpTest.blank(dir.resolve("disk.raw"), 16L * MIB);
        Path nbd = dir.resolve("nbd.sock");
        Path qmp = dir.resolve("qmp.sock");
        List<String> args = new ArrayList<>(DaemonQmpTest.monitor(qmp));
        args.addAll(List.of("--blockdev", "driver=file,node-name=file0,filename=" + img,
                "--blockdev", "driver=raw,node-name=disk0,file=file0",
                "--blockdev", "driver=null-co,node-name=zero0,size=4194304,read-zeroes=on",
                "--nbd-server", "addr.type=unix,addr.path=" + nbd,
                "--export", "type=nbd,id=exp0,node-name=disk0,name=disk,writable=on,description=the test disk",
                "--export", "type=nbd,id=exp1,node-name=zero0"));
        String disk = QemuTool.nbdUri("disk", nbd);
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true)) {
            QemuTool.qemuIo(disk, "write -P 0xab 0 1M", "read -P 0xab 0 1M", "write -P 0x5c 3M 64k",
                    "write -z 1M 1M", "read -P 0 1M 1M", "read -P 0x5c 3M 64k");
            Path ref = reference(dir, 16L * MIB, "write -P 0xab 0 1M", "write -P 0x5c 3M 64k");
            String cmp = QemuTool.ok("qemu-img", "compare", "-f", "raw", "-F", "raw", disk, ref.toString());
            assertTrue(cmp.contains("Images are identical"), cmp);
            String info = QemuTool.ok("qemu-img", "info", "--output=json", disk);
            assertTrue(info.contains("\"virtual-size\": " + (16L * MIB)), info);

            // the export without name= is named after its node, and is read-only without writable=on
            String zero = QemuTool.nbdUri("zero0", nbd);
            QemuTool.qemuIo(true, zero, "read -P 0 0 4M");
            QemuTool.Result w = QemuTool.run("qemu-io", "-f", "raw", "-c", "write -P 1 0 4k", zero);
            assertNotEquals(0, w.exit(), "a read-write open of a read-only export: " + w);
            QemuTool.Result none = QemuTool.run("qemu-io", "-f", "raw", "-r", "-c", "read 0 4k",
                    QemuTool.nbdUri("nowhere", nbd));
            assertNotEquals(0, none.exit(), "an export name nobody serves: " + none.output());

            JsonNode exports = c.ok("query-block-exports", null);
            assertEquals(2, exports.size(), exports.toString());
            for (JsonNode e : exports) {
                assertEquals("nbd", e.path("type").asText(), exports.toString());
                assertFalse(e.path("shutting-down").asBoolean(), exports.toString());
            }
            assertEquals("disk0", byId(exports, "exp0").path("node-name").asText(), exports.toString());
            assertEquals("zero0", byId(exports, "exp1").path("node-name").asText(), exports.toString());
            assertEquals("NBD server already running", c.error("nbd-server-start",
                    "{\"addr\": {\"type\": \"unix\", \"data\": {\"path\": \"" + dir.resolve("other.sock") + "\"}}}")
                    .path("desc").asText());
            assertTrue(d.terminate(), "SIGTERM ends the daemon");
        }
        // what the export acknowledged is on the image once the daemon has gone
        Path ref = dir.resolve("ref.raw");
        String cmp = QemuTool.ok("qemu-img", "compare", "-f", "raw", "-F", "raw", img.toString(), ref.toString());
        assertTrue(cmp.contains("Images are identical"), cmp);
    }

    @Test
    void startupErrorsAreClear(@TempDir Path dir) throws Exception {
        StorageDaemonUnderTest.Result r = StorageDaemonUnderTest.runToExit(dir, List.of(
                "--blockdev", "driver=null-co,node-name=n0", "--export", "type=nbd,id=e0,node-name=n0"));
        assertEquals(1, r.status(), r.output());
        assertTrue(r.output().contains("NBD server not running"), r.output());
        if (!StorageDaemonUnderTest.isQsd()) {
            // qsd has TLS and a connection limit; vblk refuses both by name rather than run without them
            Path sock = dir.resolve("nbd.sock");
            r = StorageDaemonUnderTest.runToExit(dir, List.of("--nbd-server",
                    "addr.type=unix,addr.path=" + sock + ",max-connections=4"));
            assertEquals(1, r.status(), r.output());
            assertTrue(r.output().contains("max-connections is not supported"), r.output());
            r = StorageDaemonUnderTest.runToExit(dir, List.of("--nbd-server",
                    "addr.type=unix,addr.path=" + sock + ",tls-creds=tls0"));
            assertEquals(1, r.status(), r.output());
            assertTrue(r.output().contains("tls-creds/tls-authz are not supported"), r.output());
            assertFalse(Files.exists(sock), "nothing listens after a start-up error");
        }
    }

    /** {@code qemu-io} reading commands from its standard input: a client that stays connected. */
    private static final class InteractiveQemuIo implements AutoCloseable {
        final Process p;
        final BufferedReader out;
        final OutputStream in;

        InteractiveQemuIo(String uri) throws Exception {
            p = new ProcessBuilder("qemu-io", "-f", "raw", uri).redirectErrorStream(true).start();
            out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            in = p.getOutputStream();
        }

        /** Sends one command and waits (bounded) for a line containing {@code expect}. */
        String command(String cmd, String expect) throws Exception {
            in.write((cmd + "\n").getBytes(StandardCharsets.UTF_8));
            in.flush();
            CompletableFuture<String> line = CompletableFuture.supplyAsync(() -> {
                StringBuilder seen = new StringBuilder();
                try {
                    String l;
                    while ((l = out.readLine()) != null) {
                        seen.append(l).append('\n');
                        if (l.contains(expect)) {
                            return seen.toString();
                        }
                    }
                } catch (java.io.IOException e) {
                    seen.append(e);
                }
                return "EOF: " + seen;
            });
            String s = line.get(QemuTool.BOUND_S, TimeUnit.SECONDS);
            if (s.startsWith("EOF: ")) {
                fail("qemu-io ended before '" + expect + "': " + s);
            }
            return s;
        }

        @Override
        public void close() throws Exception {
            in.close();
            if (!p.waitFor(QemuTool.BOUND_S, TimeUnit.SECONDS)) {
                p.destroyForcibly();
            }
        }
    }

    /**
     * An NBD server and export added over QMP while a vhost-user export
     * serves verified guest I/O: qemu-io writes and reads through it, a
     * connected client makes mode=safe deletion fail, mode=hard deletes the
     * export with BLOCK_EXPORT_DELETED, nbd-server-stop closes the socket,
     * and the vhost-user export served throughout.
     */
    @Test
    void nbdExportAddedAndDeletedOverQmpWhileVhostUserServes(@TempDir Path dir) throws Exception {
        Path img0 = DaemonQmpTest.blank(dir.resolve("disk0.raw"), 32L * MIB);
        Path img1 = DaemonQmpTest.blank(dir.resolve("disk1.raw"), 16L * MIB);
        Path qmp = dir.resolve("qmp.sock");
        Path sock0 = dir.resolve("vhost0.sock");
        Path nbd = dir.resolve("nbd.sock");
        List<String> args = DaemonQmpTest.rawDiskOverVhostUser(img0, qmp, sock0);
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true);
             Machine m0 = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock0))))) {
            DaemonQmpTest.Workload w0 = new DaemonQmpTest.Workload(m0);
            w0.reach("1000 requests on exp0", 1000);

            assertEquals("NBD server not running", c.error("block-export-add", "{\"type\": \"nbd\", \"id\": \"nbd1\", "
                    + "\"node-name\": \"disk0\"}").path("desc").asText());
            c.ok("nbd-server-start", "{\"addr\": {\"type\": \"unix\", \"data\": {\"path\": \"" + nbd + "\"}}}");
            c.ok("blockdev-add", "{\"driver\": \"raw\", \"node-name\": \"disk1\", \"file\": {\"driver\": \"file\", "
                    + "\"filename\": \"" + img1 + "\"}}");
            c.ok("block-export-add", "{\"type\": \"nbd\", \"id\": \"nbd1\", \"node-name\": \"disk1\", "
                    + "\"name\": \"hot\", \"writable\": true}");
            JsonNode exports = c.ok("query-block-exports", null);
            assertEquals(2, exports.size(), exports.toString());
            assertEquals("nbd", byId(exports, "nbd1").path("type").asText(), exports.toString());
            assertEquals("disk1", byId(exports, "nbd1").path("node-name").asText(), exports.toString());
            assertEquals("vhost-user-blk", byId(exports, "exp0").path("type").asText(), exports.toString());

            String hot = QemuTool.nbdUri("hot", nbd);
            QemuTool.qemuIo(hot, "write -P 0x7e 0 2M", "read -P 0x7e 0 2M");
            w0.reach("1000 more requests on exp0 meanwhile", 1000);

            try (InteractiveQemuIo client = new InteractiveQemuIo(hot)) {
                client.command("read -P 0x7e 0 64k", "read 65536/65536 bytes");
                JsonNode e = c.error("block-export-del", "{\"id\": \"nbd1\"}");
                assertTrue(e.path("desc").asText().startsWith("export 'nbd1' still in use"), e.toString());
                c.ok("block-export-del", "{\"id\": \"nbd1\", \"mode\": \"hard\"}");
                c.awaitEvent("BLOCK_EXPORT_DELETED", "id", "nbd1");
            }
            assertEquals("Export 'nbd1' is not found", c.error("block-export-del", "{\"id\": \"nbd1\"}")
                    .path("desc").asText());
            QemuTool.Result gone = QemuTool.run("qemu-io", "-f", "raw", "-r", "-c", "read 0 4k", hot);
            assertNotEquals(0, gone.exit(), "the deleted export is still served: " + gone.output());

            // the node is free again: exported once more and deleted with the server
            c.ok("block-export-add", "{\"type\": \"nbd\", \"id\": \"nbd2\", \"node-name\": \"disk1\"}");
            QemuTool.qemuIo(true, QemuTool.nbdUri("disk1", nbd), "read -P 0x7e 0 2M");
            c.ok("nbd-server-stop", null);
            c.awaitEvent("BLOCK_EXPORT_DELETED", "id", "nbd2");
            assertEquals("NBD server not running", c.error("nbd-server-stop", null).path("desc").asText());
            exports = c.ok("query-block-exports", null);
            assertEquals(1, exports.size(), exports.toString());
            c.ok("blockdev-del", "{\"node-name\": \"disk1\"}");

            w0.reach("exp0 still serving", 1000);
            w0.finish();
            assertTrue(m0.mainLoop().failures().isEmpty(), m0.mainLoop().failures().toString());
            m0.close();
            assertTrue(d.terminate() || StorageDaemonUnderTest.isQsd(), "SIGTERM ends the daemon");
        }
        Path ref = DaemonQmpTest.blank(dir.resolve("ref1.raw"), 16L * MIB);
        QemuTool.qemuIo(ref.toString(), "write -P 0x7e 0 2M");
        String cmp = QemuTool.ok("qemu-img", "compare", "-f", "raw", "-F", "raw", img1.toString(), ref.toString());
        assertTrue(cmp.contains("Images are identical"), cmp);
    }

    /** A job's {@code status} in {@code query-jobs}, or "" if it is not listed. */
    private static String jobStatus(QmpClient c, String id) throws Exception {
        for (JsonNode j : c.ok("query-jobs", null)) {
            if (j.path("id").asText().equals(id)) {
                return j.path("status").asText();
            }
        }
        return "";
    }

    /**
     * Issue 22's acceptance: a qcow2 overlay over a raw base, exported over
     * NBD while {@code blockdev-mirror} copies it to a qcow2 target. qemu-io
     * writes through the export while the (rate-limited) mirror copies, again
     * while it is READY, and after {@code job-complete} — when the export
     * serves the target. The export, and the target image once the daemon has
     * gone, read exactly like a raw reference that got the same writes.
     */
    @Test
    void aQcow2ChainExportedWhileAMirrorRunsStaysConsistent(@TempDir Path dir) throws Exception {
        long size = 64L * MIB;
        Path base = DaemonQmpTest.blank(dir.resolve("base.raw"), size);
        QemuTool.qemuIo(base.toString(), "write -P 0x11 0 64M"); // data everywhere: nothing for the mirror to skip
        Path top = dir.resolve("top.qcow2");
        QemuTool.ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "raw", top.toString());
        QemuTool.ok("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 4M 4M", top.toString());
        Path target = dir.resolve("target.qcow2");
        QemuTool.ok("qemu-img", "create", "-q", "-f", "qcow2", target.toString(), "64M");
        Path ref = dir.resolve("ref.raw");
        QemuTool.ok("qemu-img", "convert", "-f", "qcow2", "-O", "raw", top.toString(), ref.toString());

        String[] during = new String[16];
        for (int i = 0; i < during.length; i++) {
            during[i] = "write -P 0x" + Integer.toHexString(0x30 + i) + " " + (i * 4) + "M 512k";
        }
        String[] whileReady = {"write -P 0x44 20M 1M", "write -z 1M 64k", "write -P 0x45 63M 1M"};
        String[] afterPivot = {"write -P 0x55 30M 1M", "write -z 5M 128k", "read -P 0x55 30M 1M"};

        Path nbd = dir.resolve("nbd.sock");
        Path qmp = dir.resolve("qmp.sock");
        List<String> args = new ArrayList<>(DaemonQmpTest.monitor(qmp));
        args.addAll(List.of("--blockdev", "driver=file,node-name=base-file,filename=" + base,
                "--blockdev", "driver=raw,node-name=base,file=base-file",
                "--blockdev", "driver=file,node-name=top-file,filename=" + top,
                "--blockdev", "driver=qcow2,node-name=top,file=top-file,backing=base",
                "--nbd-server", "addr.type=unix,addr.path=" + nbd,
                "--export", "type=nbd,id=exp0,node-name=top,name=disk,writable=on"));
        String uri = QemuTool.nbdUri("disk", nbd);
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true)) {
            c.ok("blockdev-add", "{\"driver\": \"qcow2\", \"node-name\": \"target\", \"file\": "
                    + "{\"driver\": \"file\", \"filename\": \"" + target + "\"}}");
            // 1 MiB/s over 64 MiB of data: the copy is still running when the writes below have landed
            c.ok("blockdev-mirror", "{\"job-id\": \"mirror0\", \"device\": \"top\", \"target\": \"target\", "
                    + "\"sync\": \"full\", \"speed\": 1048576}");
            c.awaitEvent("JOB_STATUS_CHANGE", "status", "running");
            QemuTool.qemuIo(uri, during);
            assertEquals("running", jobStatus(c, "mirror0"), "the writes were meant to land during the copy\n"
                    + c.transcript());
            c.ok("block-job-set-speed", "{\"device\": \"mirror0\", \"speed\": 0}");
            c.awaitEvent("BLOCK_JOB_READY", "device", "mirror0");
            QemuTool.qemuIo(uri, whileReady);
            c.ok("job-complete", "{\"id\": \"mirror0\"}");
            JsonNode done = c.awaitEvent("BLOCK_JOB_COMPLETED", "device", "mirror0");
            assertFalse(done.path("data").has("error"), done.toString());
            assertEquals("mirror", done.path("data").path("type").asText(), done.toString());
            c.awaitEvent("JOB_STATUS_CHANGE", "status", "null");
            assertEquals("", jobStatus(c, "mirror0"), "auto-dismiss removed the job");
            JsonNode exports = c.ok("query-block-exports", null);
            assertEquals("target", byId(exports, "exp0").path("node-name").asText(),
                    "the export serves the mirror's target now: " + exports);

            QemuTool.qemuIo(uri, afterPivot);
            for (String[] writes : List.of(during, whileReady, afterPivot)) {
                QemuTool.qemuIo(ref.toString(), writes);
            }
            String cmp = QemuTool.ok("qemu-img", "compare", "-f", "raw", "-F", "raw", uri, ref.toString());
            assertTrue(cmp.contains("Images are identical"), cmp);
            assertTrue(d.terminate(), "SIGTERM ends the daemon");
        }
        String cmp = QemuTool.ok("qemu-img", "compare", "-f", "qcow2", "-F", "raw", target.toString(), ref.toString());
        assertTrue(cmp.contains("Images are identical"), cmp);
        QemuTool.ok("qemu-img", "check", "-f", "qcow2", target.toString());
        QemuTool.ok("qemu-img", "check", "-f", "qcow2", top.toString());
        String info = QemuTool.ok("qemu-img", "info", "-f", "qcow2", target.toString());
        assertFalse(info.contains("backing file:"), "a full mirror's target stands alone:\n" + info);
    }
}
