package io.vblk.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Real NBD clients against an export: qemu-img info/convert/compare/map,
 * qemu-io, nbdinfo --map/--list, and concurrent qemu-io clients. Each test
 * runs against vblk and against qemu-storage-daemon on the same kind of
 * image, so what it expects is what QEMU's own server does.
 */
class QemuPeersTest {
    private static final long MIB = 1 << 20;

    /** A 64 MiB qcow2 (64 KiB clusters): data at 1 MiB (64 KiB) and 10 MiB (128 KiB), a zero cluster at 2 MiB. */
    static Path sparseQcow2(Path dir) {
        Path img = dir.resolve("sparse.qcow2");
        Tools.ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", img.toString(), "64M");
        Tools.ok("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 1M 64k", "-c", "write -z 2M 64k", "-c",
                "write -P 0x22 10M 128k", img.toString());
        return img;
    }

    @ParameterizedTest
    @EnumSource(NbdPeer.Kind.class)
    void qemuImgInfoConvertAndCompareSeeTheImage(NbdPeer.Kind kind, @TempDir Path dir) {
        Path img = sparseQcow2(dir);
        Path copy = dir.resolve("copy.qcow2");
        try (NbdPeer p = NbdPeer.start(kind, dir, img, "qcow2", "disk", false)) {
            String info = Tools.ok("qemu-img", "info", "-f", "raw", p.uri());
            assertTrue(info.contains("virtual size: 64 MiB (67108864 bytes)"), info);
            Tools.ok("qemu-img", "compare", "-f", "raw", "-F", "qcow2", p.uri(), img.toString());
            Tools.ok("qemu-img", "convert", "-f", "raw", "-O", "qcow2", p.uri(), copy.toString());
        }
        Tools.ok("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", copy.toString(), img.toString());
        Tools.ok("qemu-io", "-f", "qcow2", "-c", "read -P 0x22 10M 128k", "-c", "read -P 0 2M 64k", copy.toString());
    }

    @ParameterizedTest
    @EnumSource(NbdPeer.Kind.class)
    void qemuIoWritesReachTheImage(NbdPeer.Kind kind, @TempDir Path dir) {
        Path img = dir.resolve("disk.raw");
        Tools.ok("qemu-img", "create", "-q", "-f", "raw", img.toString(), "32M");
        try (NbdPeer p = NbdPeer.start(kind, dir, img, "raw", "disk", true)) {
            String out = Tools.ok("qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1M", "-c", "read -P 0xab 0 1M", "-c",
                    "write -z 4M 2M", "-c", "write -f -P 0xcd 5M 4k", "-c", "flush", p.uri());
            assertTrue(out.contains("read 1048576/1048576 bytes"), out);
            assertFalse(out.contains("fail") || out.contains("error"), out);
        }
        String check = Tools.ok("qemu-io", "-f", "raw", "-c", "read -P 0xab 0 1M", "-c", "read -P 0 4M 1M", "-c",
                "read -P 0xcd 5M 4k", img.toString());
        assertFalse(check.contains("fail"), check);
    }

    @ParameterizedTest
    @EnumSource(NbdPeer.Kind.class)
    void qemuImgMapShowsTheHolesOfASparseQcow2(NbdPeer.Kind kind, @TempDir Path dir) {
        Path img = sparseQcow2(dir);
        try (NbdPeer p = NbdPeer.start(kind, dir, img, "qcow2", "disk", false)) {
            String map = Tools.ok("qemu-img", "map", "--output=json", "-f", "raw", p.uri());
            List<long[]> data = new ArrayList<>();
            long holeZero = 0;
            Matcher m = Pattern.compile("\"start\": (\\d+), \"length\": (\\d+),[^}]*\"zero\": (true|false), \"data\": (true|false)")
                    .matcher(map);
            while (m.find()) {
                long start = Long.parseLong(m.group(1));
                long len = Long.parseLong(m.group(2));
                if (m.group(4).equals("true")) {
                    data.add(new long[] {start, len});
                } else if (m.group(3).equals("true")) {
                    holeZero += len;
                }
            }
            assertEquals(2, data.size(), "two data runs in:\n" + map);
            assertEquals(MIB, data.get(0)[0], map);
            assertEquals(64 * 1024, data.get(0)[1], map);
            assertEquals(10 * MIB, data.get(1)[0], map);
            assertEquals(128 * 1024, data.get(1)[1], map);
            assertEquals(64 * MIB - 192 * 1024, holeZero, "everything else reads as zero without data:\n" + map);
        }
    }

    @ParameterizedTest
    @EnumSource(NbdPeer.Kind.class)
    void nbdinfoListsTheExportAndMapsItsAllocation(NbdPeer.Kind kind, @TempDir Path dir) {
        Path img = sparseQcow2(dir);
        try (NbdPeer p = NbdPeer.start(kind, dir, img, "qcow2", "disk", false)) {
            String map = Tools.ok("nbdinfo", "--map", p.uri());
            assertTrue(Pattern.compile("(?m)^\\s*0\\s+1048576\\s+3\\s+hole,zero$").matcher(map).find(), map);
            assertTrue(Pattern.compile("(?m)^\\s*1048576\\s+65536\\s+0\\s+data$").matcher(map).find(), map);
            assertTrue(Pattern.compile("(?m)^\\s*10485760\\s+131072\\s+0\\s+data$").matcher(map).find(), map);
            String list = Tools.ok("nbdinfo", "--list", p.uri());
            assertTrue(list.contains("export=\"disk\""), list);
            assertTrue(list.contains("test export disk"), "the description:\n" + list);
            assertTrue(list.contains("export-size: 67108864"), list);
            assertTrue(list.contains("base:allocation"), list);
        }
    }

    @Test
    void concurrentQemuIoClientsEachGetTheirOwnWrites(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("disk.raw");
        Tools.ok("qemu-img", "create", "-q", "-f", "raw", img.toString(), "16M");
        int clients = 4;
        try (NbdPeer p = NbdPeer.start(NbdPeer.Kind.VBLK, dir, img, "raw", "disk", true)) {
            List<Process> procs = new ArrayList<>();
            for (int i = 0; i < clients; i++) {
                String pat = "0x" + Integer.toHexString(0x40 + i);
                String region = (i * 4) + "M";
                procs.add(new ProcessBuilder("qemu-io", "-f", "raw", "-c", "aio_write -P " + pat + " " + region + " 1M",
                        "-c", "aio_write -P " + pat + " " + (i * 4 + 1) + "M 1M", "-c", "aio_flush", "-c",
                        "read -P " + pat + " " + region + " 2M", p.uri()).redirectErrorStream(true).start());
            }
            for (int i = 0; i < clients; i++) {
                Process pr = procs.get(i);
                assertTrue(pr.waitFor(Tools.TIMEOUT_S, java.util.concurrent.TimeUnit.SECONDS), "client " + i + " finished");
                String out = new String(pr.getInputStream().readAllBytes());
                assertEquals(0, pr.exitValue(), out);
                assertTrue(out.contains("read 2097152/2097152 bytes") && !out.contains("fail"), out);
            }
        }
        for (int i = 0; i < clients; i++) {
            String out = Tools.ok("qemu-io", "-f", "raw", "-c", "read -P 0x" + Integer.toHexString(0x40 + i) + " "
                    + (i * 4) + "M 2M", "-c", "read -P 0 " + (i * 4 + 2) + "M 2M", img.toString());
            assertFalse(out.contains("fail"), out);
        }
    }
}
