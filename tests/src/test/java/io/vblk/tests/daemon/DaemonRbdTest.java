package io.vblk.tests.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.rbd.CephCluster;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;

import com.fasterxml.jackson.databind.JsonNode;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code driver=rbd} nodes in the daemon, on the one-node Ceph cluster this
 * class starts ({@link CephCluster}, contrib/ceph-one-node.sh): served over
 * NBD to {@code qemu-io} with the data read back by {@code rbd export}, and
 * the target of a {@code blockdev-mirror} from a local file under verified
 * guest I/O. With {@code -Dvblk.daemon=qsd} the same tests run against
 * qemu-storage-daemon (its rbd driver is in qemu-block-extra).
 */
@Tag("rbd")
class DaemonRbdTest {
    private static final int MIB = 1 << 20;
    private static CephCluster cluster;
    private static final AtomicInteger IMAGES = new AtomicInteger();

    @BeforeAll
    static void startCluster() throws Exception {
        cluster = CephCluster.start();
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (cluster != null) {
            cluster.close();
        }
    }

    /** A new image of {@code mib} MiB in pool rbd. */
    private static String newImage(int mib) throws Exception {
        String name = "daemon" + IMAGES.incrementAndGet();
        cluster.rbd("create", "--size", mib + "M", "rbd/" + name);
        return name;
    }

    /** {@code rbd export} of the image into {@code dir}, compared with {@code expected} by qemu-img. */
    private static void assertImageEquals(Path dir, String image, Path expected) throws Exception {
        Path out = dir.resolve(image + ".export");
        cluster.rbd("export", "rbd/" + image, out.toString());
        String cmp = QemuTool.ok("qemu-img", "compare", "-f", "raw", "-F", "raw", out.toString(), expected.toString());
        assertTrue(cmp.contains("Images are identical"), cmp);
    }

    @Test
    void rbdNodeServedOverNbdReadsBackWithRbdExport(@TempDir Path dir) throws Exception {
        String image = newImage(16);
        Path nbd = dir.resolve("nbd.sock");
        Path qmp = dir.resolve("qmp.sock");
        List<String> args = new ArrayList<>(DaemonQmpTest.monitor(qmp));
        args.addAll(List.of("--blockdev", "driver=rbd,node-name=rbd0,pool=rbd,image=" + image + ",conf="
                        + cluster.conf() + ",user=admin,cache.direct=on",
                "--nbd-server", "addr.type=unix,addr.path=" + nbd,
                "--export", "type=nbd,id=exp0,node-name=rbd0,name=disk,writable=on"));
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true)) {
            String disk = QemuTool.nbdUri("disk", nbd);
            QemuTool.qemuIo(disk, "write -P 0xab 0 1M", "write -P 0x3c 9M 192k", "read -P 0xab 0 1M",
                    "read -P 0x3c 9M 192k", "read -P 0 1M 8M");
            String nodes = c.ok("query-named-block-nodes", null).toString();
            assertTrue(nodes.contains("\"rbd0\"") && nodes.contains("\"rbd\""), nodes);

            // the JSON form over QMP, read-only, on the same image; unknown members are refused as qsd does
            c.ok("blockdev-add", "{\"driver\": \"rbd\", \"node-name\": \"rbd1\", \"pool\": \"rbd\", \"image\": \""
                    + image + "\", \"conf\": \"" + cluster.conf() + "\", \"read-only\": true}");
            c.ok("block-export-add", "{\"type\": \"nbd\", \"id\": \"exp1\", \"node-name\": \"rbd1\"}");
            QemuTool.qemuIo(true, QemuTool.nbdUri("rbd1", nbd), "read -P 0xab 0 1M", "read -P 0x3c 9M 192k");
            JsonNode e = c.error("blockdev-add", "{\"driver\": \"rbd\", \"node-name\": \"rbd2\", \"pool\": \"rbd\", "
                    + "\"image\": \"" + image + "\", \"bogus\": 1}");
            assertEquals("Parameter 'bogus' is unexpected", e.path("desc").asText());
            e = c.error("blockdev-add", "{\"driver\": \"rbd\", \"node-name\": \"rbd3\", \"pool\": \"rbd\"}");
            assertEquals("Parameter 'image' is missing", e.path("desc").asText());
            assertFalse(c.ok("query-named-block-nodes", null).toString().contains("\"rbd2\""),
                    "a refused blockdev-add left a node");
            c.ok("block-export-del", "{\"id\": \"exp1\"}");
            c.awaitEvent("BLOCK_EXPORT_DELETED", "id", "exp1");
            c.ok("blockdev-del", "{\"node-name\": \"rbd1\"}");
            assertTrue(d.terminate(), "SIGTERM ends the daemon");
        }
        Path ref = DaemonQmpTest.blank(dir.resolve("ref.raw"), 16L * MIB);
        QemuTool.qemuIo(ref.toString(), "write -P 0xab 0 1M", "write -P 0x3c 9M 192k");
        assertImageEquals(dir, image, ref);
    }

    /**
     * A local disk served to a guest over vhost-user is mirrored into RBD
     * under the guest's verified I/O; the guest stops, and after READY the job
     * completes (the export pivots to the rbd node) and {@code rbd export}
     * equals the local file.
     */
    @Test
    void mirrorFromLocalFileIntoRbdUnderGuestIo(@TempDir Path dir) throws Exception {
        String image = newImage(16);
        Path src = DaemonQmpTest.blank(dir.resolve("src.raw"), 16L * MIB);
        Path qmp = dir.resolve("qmp.sock");
        Path sock0 = dir.resolve("vhost0.sock");
        List<String> args = new ArrayList<>(List.of("--object", "iothread,id=io0"));
        args.addAll(DaemonQmpTest.monitor(qmp));
        args.addAll(List.of("--blockdev", "driver=file,node-name=file0,filename=" + src,
                "--blockdev", "driver=raw,node-name=disk0,file=file0",
                "--export", "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=" + sock0
                        + ",writable=on,iothread=io0"));
        try (StorageDaemonUnderTest d = StorageDaemonUnderTest.start(dir, args);
             QmpClient c = QmpClient.connect(qmp, true);
             Machine m0 = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock0))))) {
            DaemonQmpTest.Workload w = new DaemonQmpTest.Workload(m0);
            w.reach("1000 requests before the mirror", 1000);
            c.ok("blockdev-add", "{\"driver\": \"rbd\", \"node-name\": \"target\", \"pool\": \"rbd\", \"image\": \""
                    + image + "\", \"conf\": \"" + cluster.conf() + "\"}");
            c.ok("blockdev-mirror", "{\"job-id\": \"mirror0\", \"device\": \"disk0\", \"target\": \"target\", "
                    + "\"sync\": \"full\"}");
            // the guest writes during the bulk copy; it stops before READY is awaited, since random writes to a
            // local file outpace a one-node cluster's seconds-long writes and the job would never converge
            w.reach("1000 requests during the mirror", 1000);
            w.finish();
            c.awaitEvent("BLOCK_JOB_READY", "device", "mirror0");
            c.ok("job-complete", "{\"id\": \"mirror0\"}");
            JsonNode done = c.awaitEvent("BLOCK_JOB_COMPLETED", "device", "mirror0");
            assertFalse(done.path("data").has("error"), done.toString());
            JsonNode exports = c.ok("query-block-exports", null);
            assertEquals("target", exports.get(0).path("node-name").asText(), "the export pivoted: " + exports);
            assertTrue(m0.mainLoop().failures().isEmpty(), m0.mainLoop().failures().toString());
            m0.close();
            assertTrue(d.terminate() || StorageDaemonUnderTest.isQsd(), "SIGTERM ends the daemon");
        }
        assertImageEquals(dir, image, src);
    }
}
