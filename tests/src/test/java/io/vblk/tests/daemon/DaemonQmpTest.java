package io.vblk.tests.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.firmware.BootVerdict;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.IoPattern;
import io.vblk.guest.LatencySink;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.tests.GuestProgress;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code vblk daemon} driven as qemu-storage-daemon is: started with qsd
 * command lines, managed over QMP on a real UNIX socket, its exports used
 * by vblk's own vhost-user front-end (the simulated machine's Linux-like
 * driver with verified I/O). With {@code -Dvblk.daemon=qsd} the same tests
 * run against {@code /usr/bin/qemu-storage-daemon}: what they assert is
 * qsd's behaviour, not vblk's idea of it. Where vblk deliberately differs
 * (it removes its sockets at exit) the assertion is vblk's only.
 */
class DaemonQmpTest {
    private static final Duration BOUND = Duration.ofSeconds(60);

    static List<String> monitor(Path sock) {
        return List.of("--chardev", "socket,id=qmp0,path=" + sock + ",server=on,wait=off", "--monitor", "chardev=qmp0");
    }

    /**
     * A daemon's arguments (qsd syntax) for one raw file, node {@code disk0},
     * served writable over vhost-user as export {@code exp0} on IOThread
     * {@code io0}, with a QMP monitor; callers add what their case needs.
     */
    static List<String> rawDiskOverVhostUser(Path img, Path qmp, Path sock) {
        List<String> args = new ArrayList<>(List.of("--object", "iothread,id=io0"));
        args.addAll(monitor(qmp));
        args.addAll(List.of("--blockdev", "driver=file,node-name=file0,filename=" + img,
                "--blockdev", "driver=raw,node-name=disk0,file=file0",
                "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + sock
                        + ",writable=on,iothread=io0"));
        return args;
    }

    /**
     * A raw image of {@code size} zero bytes that are written, not a hole:
     * it reads as zeroes (what the guest's verifier expects of blocks it has
     * not written) but block status reports data, so jobs copy it.
     */
    static Path allocatedZeroes(Path p, long size) throws Exception {
        java.nio.ByteBuffer chunk = java.nio.ByteBuffer.allocate(1 << 20);
        try (java.nio.channels.FileChannel f = java.nio.channels.FileChannel.open(p,
                java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.WRITE)) {
            for (long off = 0; off < size; off += chunk.capacity()) {
                chunk.clear();
                f.write(chunk, off);
            }
        }
        return p;
    }

    static Path blank(Path p, long size) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
        return p;
    }

    @Test
    void startupErrorsNameTheOptionAndExitWithOne(@TempDir Path dir) throws Exception {
        StorageDaemonUnderTest.Result r = StorageDaemonUnderTest.runToExit(dir,
                List.of("--blockdev", "driver=null-co,node-name=n,bogus=1"));
        assertEquals(1, r.status(), r.output());
        assertTrue(r.output().contains("--blockdev driver=null-co,node-name=n,bogus=1: Parameter 'bogus' is unexpected"),
                r.output());
        Path sock = dir.resolve("x.sock");
        r = StorageDaemonUnderTest.runToExit(dir, List.of("--export",
                "type=vhost-user-blk,id=e,node-name=zz,addr.type=unix,addr.path=" + sock));
        assertEquals(1, r.status(), r.output());
        assertTrue(r.output().contains("Cannot find device='' nor node-name='zz'"), r.output());
        assertFalse(Files.exists(sock), "nothing is served after a start-up error");
        r = StorageDaemonUnderTest.runToExit(dir, List.of("--bogus"));
        assertEquals(1, r.status(), r.output());
        assertTrue(r.output().contains("unrecognized option '--bogus'"), r.output());
    }

    @Test
    void badCommandsAndBadJsonGetErrorRepliesAndTheMonitorKeepsServing(@TempDir Path dir) throws Exception {
        Path qmp = dir.resolve("qmp.sock");
        List<String> args = new ArrayList<>(monitor(qmp));
        args.addAll(List.of("--blockdev", "driver=null-co,node-name=n0,size=1048576"));
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, false)) {
            assertTrue(c.greeting.path("QMP").path("version").path("qemu").has("major"), c.greeting.toString());
            JsonNode e = c.error("query-version", null);
            assertEquals("CommandNotFound", e.path("class").asText());
            assertEquals("Expecting capabilities negotiation with 'qmp_capabilities'", e.path("desc").asText());
            c.ok("qmp_capabilities", null);

            c.sendRaw("{\"execute\": \"no-such-command\", \"id\": 17}\n");
            JsonNode r = c.reply();
            assertEquals("CommandNotFound", r.path("error").path("class").asText(), r.toString());
            assertEquals(17, r.path("id").asInt(), "the id is echoed");

            c.sendRaw("{\"execute\": \"query-version\", }\n");
            r = c.reply();
            assertEquals("GenericError", r.path("error").path("class").asText(), r.toString());
            assertTrue(r.path("error").path("desc").asText().startsWith("JSON parse error"), r.toString());

            c.sendRaw("[1, 2]\n");
            assertEquals("QMP input must be a JSON object", c.reply().path("error").path("desc").asText());

            e = c.error("blockdev-add", "{\"driver\": \"null-co\", \"node-name\": \"n1\", \"size\": \"x\"}");
            assertEquals("Invalid parameter type for 'size', expected: integer", e.path("desc").asText());
            e = c.error("blockdev-add", "{\"driver\": \"null-co\", \"node-name\": \"n2\", \"bogus\": 1}");
            assertEquals("Parameter 'bogus' is unexpected", e.path("desc").asText());
            e = c.error("blockdev-del", "{\"node-name\": \"nowhere\"}");
            assertEquals("Failed to find node with node-name='nowhere'", e.path("desc").asText());

            String nodes = c.ok("query-named-block-nodes", null).toString();
            assertTrue(nodes.contains("\"n0\""), nodes);
            assertFalse(nodes.contains("\"n1\"") || nodes.contains("\"n2\""), "a refused blockdev-add left a node: " + nodes);
            assertEquals(7, c.ok("query-version", null).path("qemu").path("major").asInt());

            if (!StorageDaemonUnderTest.isQsd()) {
                // a client that leaves right after sending a command: vblk runs a command it has read to its end
                // (qsd may drop a request its dispatcher had not taken yet when the client left). A monitor
                // serves one client at a time, as a socket chardev does: the first client leaves first.
                c.close();
                try (QmpClient gone = QmpClient.connect(qmp, true)) {
                    gone.sendRaw("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"null-co\", "
                            + "\"node-name\": \"late\", \"size\": 4096}}\n");
                }
                try (QmpClient again = QmpClient.connect(qmp, true)) {
                    String after = again.ok("query-named-block-nodes", null).toString();
                    assertTrue(after.contains("\"late\""), "the departed client's command was lost: " + after);
                }
            }
            assertTrue(d.terminate(), "SIGTERM ends the daemon");
        }
    }

    /** A verified random read/write workload of the machine's Linux-like driver on its one disk. */
    static final class Workload {
        final AtomicBoolean stop = new AtomicBoolean();
        final GuestProgress progress = new GuestProgress();
        final LinuxGuest.Run run;
        final Machine m;

        Workload(Machine m) {
            this.m = m;
            assertEquals(BootVerdict.NO_BOOT_SIGNATURE, m.boot().verdict());
            LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
            GuestWorkload.Spec spec = new GuestWorkload.Spec(8, 4096, IoPattern.parse("randrw"), true, false);
            run = g.start(spec, stop::get, new LatencySink[] {progress}, 7);
        }

        void reach(String what, long more) {
            m.await(what, progress.reach(progress.count() + more), BOUND);
        }

        /** What completed so far was right (the workload may be stuck on a back-end that went away). */
        void checkSoFar() {
            for (GuestWorkload w : run.workloads()) {
                assertEquals(0, w.stats.mismatches, "data read back differs from what was written");
                assertTrue(w.stats.completed > 0);
            }
        }

        void finish() {
            stop.set(true);
            for (CompletableFuture<Void> f : run.done()) {
                m.await("workload end", f, BOUND);
            }
            assertNull(run.firstProblem(), run.firstProblem());
            for (GuestWorkload w : run.workloads()) {
                assertEquals(0, w.stats.errors, "I/O errors");
                assertEquals(0, w.stats.mismatches, "data read back differs from what was written");
                assertTrue(w.stats.completed > 0);
            }
        }
    }

    /**
     * The man page's qcow2 example, added over QMP while another export
     * serves verified guest I/O: both disks serve, the in-use node cannot be
     * deleted, the export is deleted with BLOCK_EXPORT_DELETED, then its
     * nodes; SIGTERM ends the daemon cleanly.
     */
    @Test
    void addNodeAndExportWhileAnotherExportServesIo(@TempDir Path dir) throws Exception {
        Path img0 = blank(dir.resolve("disk0.raw"), 32L << 20);
        Path img1 = dir.resolve("disk1.qcow2");
        Process qi = new ProcessBuilder("qemu-img", "create", "-q", "-f", "qcow2", img1.toString(), "32M")
                .redirectErrorStream(true).start();
        assertTrue(qi.waitFor(60, TimeUnit.SECONDS) && qi.exitValue() == 0, "qemu-img create failed");
        Path qmp = dir.resolve("qmp.sock");
        Path sock0 = dir.resolve("vhost0.sock");
        Path sock1 = dir.resolve("vhost1.sock");
        List<String> args = rawDiskOverVhostUser(img0, qmp, sock0);
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true);
             Machine m0 = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock0))))) {
            Workload w0 = new Workload(m0);
            w0.reach("1000 requests on exp0", 1000);

            c.ok("blockdev-add", "{\"driver\": \"file\", \"node-name\": \"file1\", \"filename\": \"" + img1 + "\"}");
            c.ok("blockdev-add", "{\"driver\": \"qcow2\", \"node-name\": \"qcow2\", \"file\": \"file1\"}");
            c.ok("block-export-add", "{\"type\": \"vhost-user-blk\", \"id\": \"exp1\", \"node-name\": \"qcow2\", "
                    + "\"addr\": {\"type\": \"unix\", \"path\": \"" + sock1 + "\"}, \"writable\": true}");
            String exports = c.ok("query-block-exports", null).toString();
            assertTrue(exports.contains("\"exp0\"") && exports.contains("\"exp1\""), exports);
            assertTrue(c.error("blockdev-del", "{\"node-name\": \"qcow2\"}").path("desc").asText()
                    .startsWith("Node qcow2 is in use"), c.transcript());
            assertTrue(c.error("blockdev-del", "{\"node-name\": \"file1\"}").path("desc").asText()
                    .contains("file1 is in use"), c.transcript());
            assertEquals("Block export id 'exp1' is already in use", c.error("block-export-add",
                    "{\"type\": \"vhost-user-blk\", \"id\": \"exp1\", \"node-name\": \"qcow2\", "
                            + "\"addr\": {\"type\": \"unix\", \"path\": \"" + dir.resolve("x.sock") + "\"}}")
                    .path("desc").asText());

            try (Machine m1 = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock1))))) {
                Workload w1 = new Workload(m1);
                w1.reach("1000 requests on the hot-added exp1", 1000);
                w0.reach("1000 more requests on exp0 meanwhile", 1000);
                // deleting the export under a connected front-end: qsd 7.2 counts no vhost-user connection as a
                // user, so even mode=safe disconnects the front-end and deletes the export
                c.ok("block-export-del", "{\"id\": \"exp1\"}");
                c.awaitEvent("BLOCK_EXPORT_DELETED", "id", "exp1");
                assertFalse(Files.exists(sock1), "the deleted export's socket is removed");
                w1.stop.set(true);
                w1.checkSoFar();
                assertEquals("Export 'exp1' is not found", c.error("block-export-del", "{\"id\": \"exp1\"}")
                        .path("desc").asText());
            }
            c.ok("blockdev-del", "{\"node-name\": \"qcow2\"}");
            c.ok("blockdev-del", "{\"node-name\": \"file1\"}");
            String nodes = c.ok("query-named-block-nodes", null).toString();
            assertFalse(nodes.contains("\"qcow2\""), nodes);

            w0.reach("exp0 still serving", 1000);
            w0.finish();
            assertTrue(m0.mainLoop().failures().isEmpty(), m0.mainLoop().failures().toString());
            m0.close();
            boolean ended = d.terminate();
            if (!StorageDaemonUnderTest.isQsd()) {
                // qsd 7.2 does not end on SIGTERM within a minute once an export was deleted under a connected
                // front-end (it ends when the export was deleted after the front-end left); it also leaves its
                // socket files and pid file behind. README, "vblk daemon", lists both differences.
                assertTrue(ended, "SIGTERM ends the daemon");
                assertFalse(Files.exists(sock0), "the export's socket is removed");
                assertFalse(Files.exists(qmp), "the monitor's socket is removed");
                assertFalse(Files.exists(dir.resolve("daemon.pid")), "the pid file is removed");
            }
        }
    }

    /**
     * {@code blockdev-mirror} of an exported disk under verified guest I/O:
     * READY, {@code job-complete}, the export pivots to the target and the
     * guest keeps reading what it wrote; the job goes through QEMU's states
     * with its events.
     */
    @Test
    void mirrorUnderGuestIoCompletesAndPivots(@TempDir Path dir) throws Exception {
        Path img0 = blank(dir.resolve("src.raw"), 32L << 20);
        Path img1 = blank(dir.resolve("dst.raw"), 32L << 20);
        Path qmp = dir.resolve("qmp.sock");
        Path sock0 = dir.resolve("vhost0.sock");
        List<String> args = new ArrayList<>(List.of("--object", "iothread,id=io0"));
        args.addAll(monitor(qmp));
        args.addAll(List.of("--blockdev", "driver=file,node-name=file0,filename=" + img0,
                "--blockdev", "driver=raw,node-name=disk0,file=file0",
                "--blockdev", "{\"driver\": \"raw\", \"node-name\": \"target\", \"file\": {\"driver\": \"file\", "
                        + "\"filename\": \"" + img1 + "\"}}",
                "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + sock0
                        + ",writable=on,iothread=io0"));
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true);
             Machine m0 = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock0))))) {
            Workload w = new Workload(m0);
            w.reach("1000 requests before the mirror", 1000);
            c.ok("blockdev-mirror", "{\"job-id\": \"mirror0\", \"device\": \"disk0\", \"target\": \"target\", "
                    + "\"sync\": \"full\", \"buf-size\": 262144}"); // four 64 KiB copy operations at once
            c.awaitEvent("BLOCK_JOB_READY", "device", "mirror0");
            JsonNode jobs = c.ok("query-block-jobs", null);
            assertEquals("mirror", jobs.get(0).path("type").asText(), jobs.toString());
            assertTrue(jobs.get(0).path("ready").asBoolean(), jobs.toString());
            assertEquals("ready", c.ok("query-jobs", null).get(0).path("status").asText());
            w.reach("1000 requests while READY", 1000);
            c.ok("job-complete", "{\"id\": \"mirror0\"}");
            JsonNode done = c.awaitEvent("BLOCK_JOB_COMPLETED", "device", "mirror0");
            assertFalse(done.path("data").has("error"), done.toString());
            JsonNode last = c.awaitEvent("JOB_STATUS_CHANGE", "status", "null");
            assertEquals("mirror0", last.path("data").path("id").asText());
            assertEquals(List.of("created", "running", "ready", "waiting", "pending", "concluded", "null"),
                    c.jobStatuses("mirror0"), c.transcript());
            assertEquals(0, c.ok("query-jobs", null).size(), "auto-dismiss removed the job");
            assertEquals("Job not found", c.error("job-pause", "{\"id\": \"mirror0\"}").path("desc").asText());
            w.reach("1000 requests on the mirror target", 1000); // reads check data written before the pivot
            w.finish();
            assertTrue(m0.mainLoop().failures().isEmpty(), m0.mainLoop().failures().toString());
        }
    }

    /**
     * {@code block-stream} into an exported qcow2 overlay under verified
     * guest I/O, paused and resumed on the way (a speed limit keeps it
     * running long enough): the overlay ends without a backing file and the
     * guest keeps reading what it wrote.
     */
    @Test
    void streamUnderGuestIoWithPauseAndResume(@TempDir Path dir) throws Exception {
        // written zeroes, not a hole: a stream skips what block status reports as a hole, and must have 32 MiB to
        // copy at 1 MiB/s to be still running when it is paused and resumed
        Path base = allocatedZeroes(dir.resolve("base.raw"), 32L << 20);
        Path top = dir.resolve("top.qcow2");
        Process qi = new ProcessBuilder("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.toString(), "-F", "raw",
                top.toString()).redirectErrorStream(true).start();
        assertTrue(qi.waitFor(60, TimeUnit.SECONDS) && qi.exitValue() == 0, "qemu-img create failed");
        Path qmp = dir.resolve("qmp.sock");
        Path sock0 = dir.resolve("vhost0.sock");
        List<String> args = new ArrayList<>(List.of("--object", "iothread,id=io0"));
        args.addAll(monitor(qmp));
        args.addAll(List.of("--blockdev", "driver=qcow2,node-name=top,file.driver=file,file.filename=" + top,
                "--export", "type=vhost-user-blk,id=exp0,node-name=top,addr.type=unix,addr.path=" + sock0
                        + ",writable=on,iothread=io0"));
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true);
             Machine m0 = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock0))))) {
            Workload w = new Workload(m0);
            w.reach("1000 requests before the stream", 1000);
            c.ok("block-stream", "{\"job-id\": \"stream0\", \"device\": \"top\", \"speed\": 1048576}");
            c.awaitEvent("JOB_STATUS_CHANGE", "status", "running");
            c.ok("job-pause", "{\"id\": \"stream0\"}");
            c.awaitEvent("JOB_STATUS_CHANGE", "status", "paused");
            assertEquals("Job 'stream0' in state 'paused' cannot accept command verb 'complete'".toLowerCase(),
                    c.error("job-complete", "{\"id\": \"stream0\"}").path("desc").asText().toLowerCase());
            w.reach("1000 requests while the stream is paused", 1000);
            // unlimited while still paused (a paused job accepts set-speed): once resumed it may finish at once
            c.ok("block-job-set-speed", "{\"device\": \"stream0\", \"speed\": 0}");
            c.ok("job-resume", "{\"id\": \"stream0\"}");
            JsonNode done = c.awaitEvent("BLOCK_JOB_COMPLETED", "device", "stream0");
            assertFalse(done.path("data").has("error"), done.toString());
            assertEquals("stream", done.path("data").path("type").asText());
            // BLOCK_JOB_COMPLETED comes between pending and concluded (as QEMU's job_completed): wait for the last
            c.awaitEvent("JOB_STATUS_CHANGE", "status", "null");
            List<String> states = c.jobStatuses("stream0");
            assertEquals(List.of("created", "running", "paused", "running"), states.subList(0, 4), c.transcript());
            assertEquals(List.of("waiting", "pending", "concluded", "null"), states.subList(states.size() - 4,
                    states.size()), c.transcript());
            for (JsonNode n : c.ok("query-named-block-nodes", null)) {
                if (n.path("node-name").asText().equals("top")) {
                    assertEquals(0, n.path("backing_file_depth").asInt(), n.toString());
                }
            }
            w.reach("1000 requests after the stream", 1000);
            w.finish();
            m0.close();
            assertTrue(d.terminate(), "SIGTERM ends the daemon");
        }
        Process info = new ProcessBuilder("qemu-img", "info", "-U", top.toString()).redirectErrorStream(true).start();
        String out = new String(info.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(info.waitFor(60, TimeUnit.SECONDS) && info.exitValue() == 0, out);
        assertFalse(out.contains("backing file:"), "the streamed overlay still names a backing file:\n" + out);
    }

    /**
     * {@code blockdev-snapshot-sync} under guest writes, then a
     * {@code transaction} whose second action fails (nothing of the first
     * stays) and one that succeeds: the export writes to the newest overlay
     * and the guest keeps reading what it wrote across both switches.
     */
    @Test
    void snapshotAndTransactionUnderGuestWrites(@TempDir Path dir) throws Exception {
        Path img0 = blank(dir.resolve("base.raw"), 32L << 20);
        Path snap1 = dir.resolve("snap1.qcow2");
        Path snap2 = dir.resolve("snap2.qcow2");
        Path qmp = dir.resolve("qmp.sock");
        Path sock0 = dir.resolve("vhost0.sock");
        List<String> args = rawDiskOverVhostUser(img0, qmp, sock0);
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true);
             Machine m0 = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock0))))) {
            Workload w = new Workload(m0);
            w.reach("1000 requests before the snapshot", 1000);
            c.ok("blockdev-snapshot-sync", "{\"node-name\": \"disk0\", \"snapshot-file\": \"" + snap1
                    + "\", \"snapshot-node-name\": \"snap1\", \"format\": \"qcow2\"}");
            w.reach("1000 requests on snap1", 1000);
            c.error("transaction", "{\"actions\": [{\"type\": \"blockdev-snapshot-sync\", \"data\": {\"node-name\": "
                    + "\"snap1\", \"snapshot-file\": \"" + snap2 + "\", \"snapshot-node-name\": \"snap2\"}}, "
                    + "{\"type\": \"blockdev-snapshot-sync\", \"data\": {\"node-name\": \"nowhere\", "
                    + "\"snapshot-file\": \"" + dir.resolve("never.qcow2") + "\", \"snapshot-node-name\": \"never\"}}]}");
            String nodes = c.ok("query-named-block-nodes", null).toString();
            assertFalse(nodes.contains("\"snap2\""), "an aborted transaction left its overlay: " + nodes);
            w.reach("1000 requests after the aborted transaction", 1000);
            if (!StorageDaemonUnderTest.isQsd()) {
                assertFalse(Files.exists(snap2), "vblk deletes the image an aborted action created");
            }
            Files.deleteIfExists(snap2); // qsd may keep it
            c.ok("transaction", "{\"actions\": [{\"type\": \"blockdev-snapshot-sync\", \"data\": {\"node-name\": "
                    + "\"snap1\", \"snapshot-file\": \"" + snap2 + "\", \"snapshot-node-name\": \"snap2\"}}]}");
            w.reach("1000 requests on snap2", 1000);
            int depth = -1;
            for (JsonNode n : c.ok("query-named-block-nodes", null)) {
                if (n.path("node-name").asText().equals("snap2")) {
                    depth = n.path("backing_file_depth").asInt();
                }
            }
            assertEquals(2, depth, "snap2 over snap1 over the raw image");
            w.finish();
            m0.close();
            assertTrue(d.terminate(), "SIGTERM ends the daemon");
        }
        Process info = new ProcessBuilder("qemu-img", "info", "-U", "--backing-chain", snap2.toString())
                .redirectErrorStream(true).start();
        String out = new String(info.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(info.waitFor(60, TimeUnit.SECONDS) && info.exitValue() == 0, out);
        assertTrue(out.contains("backing file: " + snap1) && out.contains("backing file: " + img0), out);
    }

    /** The depth of {@code node}'s backing chain as query-named-block-nodes reports it, or -1. */
    static int backingDepth(QmpClient c, String node) throws Exception {
        for (JsonNode n : c.ok("query-named-block-nodes", null)) {
            if (n.path("node-name").asText().equals(node)) {
                return n.path("backing_file_depth").asInt();
            }
        }
        return -1;
    }

    /**
     * {@code blockdev-snapshot} (the overlay added by the client with
     * {@code blockdev-add} and {@code "backing": null}) under guest writes:
     * qsd's refusals of bad overlays (one with a backing file, one whose
     * format takes none, one in use, a missing node), then the snapshot, a
     * {@code transaction} with a second {@code blockdev-snapshot} whose other
     * action fails (the overlay stays free and is used right after) and one
     * that succeeds. The guest keeps reading what it wrote across both
     * switches, and the chain on disk is overlay over overlay over the raw image.
     */
    @Test
    void blockdevSnapshotWithAddedOverlaysUnderGuestWrites(@TempDir Path dir) throws Exception {
        Path img0 = blank(dir.resolve("base.raw"), 32L << 20);
        Path ov1 = dir.resolve("ov1.qcow2");
        Path ov2 = dir.resolve("ov2.qcow2");
        Path plain = dir.resolve("plain.qcow2");
        QemuTool.ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", img0.toString(), "-F", "raw", ov1.toString());
        QemuTool.ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", ov1.toString(), "-F", "qcow2", ov2.toString());
        Path other = blank(dir.resolve("other.raw"), 32L << 20);
        QemuTool.ok("qemu-img", "create", "-q", "-f", "qcow2", "-b", other.toString(), "-F", "raw", plain.toString());
        Path qmp = dir.resolve("qmp.sock");
        Path sock0 = dir.resolve("vhost0.sock");
        List<String> args = rawDiskOverVhostUser(img0, qmp, sock0);
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true);
             Machine m0 = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock0))))) {
            Workload w = new Workload(m0);
            w.reach("1000 requests before the snapshot", 1000);
            c.ok("blockdev-add", "{\"driver\": \"qcow2\", \"node-name\": \"ov1\", \"backing\": null, "
                    + "\"file\": {\"driver\": \"file\", \"filename\": \"" + ov1 + "\"}}");
            c.ok("blockdev-add", "{\"driver\": \"qcow2\", \"node-name\": \"ov2\", \"backing\": null, "
                    + "\"file\": {\"driver\": \"file\", \"filename\": \"" + ov2 + "\"}}");
            // opened with the backing file its header names: not an overlay any more
            c.ok("blockdev-add", "{\"driver\": \"qcow2\", \"node-name\": \"backed\", "
                    + "\"file\": {\"driver\": \"file\", \"filename\": \"" + plain + "\", \"read-only\": true}, "
                    + "\"read-only\": true}");
            c.ok("blockdev-add", "{\"driver\": \"null-co\", \"node-name\": \"nul\", \"size\": 33554432}");

            assertEquals("Cannot find device='nowhere' nor node-name='nowhere'", c.error("blockdev-snapshot",
                    "{\"node\": \"nowhere\", \"overlay\": \"ov1\"}").path("desc").asText());
            assertEquals("Cannot find device='nowhere' nor node-name='nowhere'", c.error("blockdev-snapshot",
                    "{\"node\": \"disk0\", \"overlay\": \"nowhere\"}").path("desc").asText());
            assertEquals("The overlay already has a backing image", c.error("blockdev-snapshot",
                    "{\"node\": \"disk0\", \"overlay\": \"backed\"}").path("desc").asText());
            assertEquals("The overlay does not support backing images", c.error("blockdev-snapshot",
                    "{\"node\": \"disk0\", \"overlay\": \"nul\"}").path("desc").asText());
            assertEquals("The overlay is already in use", c.error("blockdev-snapshot",
                    "{\"node\": \"ov1\", \"overlay\": \"disk0\"}").path("desc").asText());
            assertEquals("Parameter 'overlay' is missing", c.error("blockdev-snapshot",
                    "{\"node\": \"disk0\"}").path("desc").asText());
            assertEquals(0, backingDepth(c, "ov1"), "a refused snapshot changed nothing");
            w.reach("1000 requests after the refusals", 1000);

            c.ok("blockdev-snapshot", "{\"node\": \"disk0\", \"overlay\": \"ov1\"}");
            assertEquals(1, backingDepth(c, "ov1"), "ov1 over the raw image");
            assertEquals("ov1", c.ok("query-block-exports", null).get(0).path("node-name").asText(),
                    "the export now writes the overlay");
            w.reach("1000 requests on ov1", 1000);
            assertEquals("The overlay is already in use", c.error("blockdev-snapshot",
                    "{\"node\": \"ov2\", \"overlay\": \"ov1\"}").path("desc").asText());

            c.error("transaction", "{\"actions\": [{\"type\": \"blockdev-snapshot\", \"data\": {\"node\": \"ov1\", "
                    + "\"overlay\": \"ov2\"}}, {\"type\": \"blockdev-snapshot\", \"data\": {\"node\": \"ov1\", "
                    + "\"overlay\": \"nul\"}}]}");
            assertEquals(0, backingDepth(c, "ov2"), "an aborted transaction left ov2 on top");
            assertEquals("ov1", c.ok("query-block-exports", null).get(0).path("node-name").asText());
            w.reach("1000 requests after the aborted transaction", 1000);

            c.ok("transaction", "{\"actions\": [{\"type\": \"blockdev-snapshot\", \"data\": {\"node\": \"ov1\", "
                    + "\"overlay\": \"ov2\"}}]}");
            assertEquals(2, backingDepth(c, "ov2"), "ov2 over ov1 over the raw image");
            w.reach("1000 requests on ov2", 1000);
            w.finish();
            assertTrue(m0.mainLoop().failures().isEmpty(), m0.mainLoop().failures().toString());
            m0.close();
            assertTrue(d.terminate(), "SIGTERM ends the daemon");
        }
        String out = QemuTool.ok("qemu-img", "info", "-U", "--backing-chain", ov2.toString());
        assertTrue(out.contains("backing file: " + ov1) && out.contains("backing file: " + img0), out);
        // the guest's writes went to the overlays: the data of both is in the chain, the base was left alone after
        // the first snapshot (qemu-img check finds no corruption in either overlay)
        QemuTool.ok("qemu-img", "check", "-U", ov1.toString());
        QemuTool.ok("qemu-img", "check", "-U", ov2.toString());
    }

    /**
     * {@code drive-mirror} of an exported raw disk under verified guest I/O
     * into a qcow2 file the daemon creates ({@code mode=absolute-paths}),
     * READY, {@code job-complete}: the export pivots to the new node, the
     * guest keeps reading what it wrote, and the file is a sound qcow2 image
     * of the source's size. A second {@code drive-mirror} with
     * {@code mode=existing} and a missing file is refused.
     */
    @Test
    void driveMirrorIntoANewQcow2UnderGuestIoPivots(@TempDir Path dir) throws Exception {
        Path img0 = blank(dir.resolve("src.raw"), 32L << 20);
        Path dst = dir.resolve("dst.qcow2");
        Path qmp = dir.resolve("qmp.sock");
        Path sock0 = dir.resolve("vhost0.sock");
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, rawDiskOverVhostUser(img0, qmp, sock0));
             QmpClient c = QmpClient.connect(qmp, true);
             Machine m0 = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock0))))) {
            Workload w = new Workload(m0);
            w.reach("1000 requests before the mirror", 1000);
            assertEquals("Could not open '" + dir.resolve("missing.raw") + "': No such file or directory",
                    c.error("drive-mirror", "{\"job-id\": \"nope\", \"device\": \"disk0\", \"target\": \""
                    + dir.resolve("missing.raw") + "\", \"sync\": \"full\", \"mode\": \"existing\"}")
                    .path("desc").asText());
            if (!StorageDaemonUnderTest.isQsd()) {
                // creating the target over the exported image is refused and the disk is untouched; qsd 7.2
                // answers with the same error but the guest then reads zeroes (its create truncated the image):
                // README, "vblk daemon", lists this difference
                String inUse = c.error("drive-mirror", "{\"job-id\": \"self\", \"device\": \"disk0\", \"target\": \""
                        + img0 + "\", \"format\": \"raw\", \"sync\": \"full\"}").path("desc").asText();
                assertTrue(inUse.startsWith("Failed to get shared \"consistent read\" lock"),
                        "creating over the exported image: " + inUse);
            }
            assertEquals(0, c.ok("query-jobs", null).size(), "a refused drive-mirror started no job");
            c.ok("drive-mirror", "{\"job-id\": \"dm0\", \"device\": \"disk0\", \"target\": \"" + dst
                    + "\", \"format\": \"qcow2\", \"node-name\": \"dm-target\", \"sync\": \"full\"}");
            c.awaitEvent("BLOCK_JOB_READY", "device", "dm0");
            w.reach("1000 requests while READY", 1000);
            c.ok("job-complete", "{\"id\": \"dm0\"}");
            JsonNode done = c.awaitEvent("BLOCK_JOB_COMPLETED", "device", "dm0");
            assertFalse(done.path("data").has("error"), done.toString());
            c.awaitEvent("JOB_STATUS_CHANGE", "status", "null");
            assertEquals("dm-target", c.ok("query-block-exports", null).get(0).path("node-name").asText(),
                    "the export pivoted to the target");
            w.reach("1000 requests on the new qcow2", 1000);
            w.finish();
            assertTrue(m0.mainLoop().failures().isEmpty(), m0.mainLoop().failures().toString());
            m0.close();
            assertTrue(d.terminate(), "SIGTERM ends the daemon");
        }
        String info = QemuTool.ok("qemu-img", "info", "-U", dst.toString());
        assertTrue(info.contains("file format: qcow2") && info.contains("virtual size: 32 MiB"), info);
        assertFalse(info.contains("backing file:"), info);
        QemuTool.ok("qemu-img", "check", "-U", dst.toString());
    }
}
