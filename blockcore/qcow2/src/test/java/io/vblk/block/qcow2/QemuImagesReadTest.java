package io.vblk.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlockNode;
import io.vblk.block.BlockStatus;
import io.vblk.block.ChildRole;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Images made and written by QEMU's tools read back correctly through vblk:
 * every cluster size from 512 B to 2 MiB, with no backing file, a raw one or
 * a qcow2 one, written by {@code qemu-io} with patterns, zeroes and discards;
 * version 2 images; compressed images from {@code qemu-img convert -c}; a
 * three-level chain with relative names; and {@code blockStatus} agreeing
 * with {@code qemu-img map}.
 */
class QemuImagesReadTest {

    @BeforeAll
    static void tools() {
        QemuTools.require();
    }

    static List<Arguments> layouts() {
        List<Arguments> l = new ArrayList<>();
        for (int cs : new int[] {512, 4096, 65536, 2 << 20}) {
            for (String backing : new String[] {"none", "raw", "qcow2"}) {
                l.add(Arguments.of(cs, backing));
            }
        }
        return l;
    }

    /** qemu-io commands and their effect on the model, so both sides see the same operations. */
    private static void qemuWrite(Path img, byte[] model, List<String> cmds, String cmd, long off, int len, int value) {
        cmds.add(cmd + " " + off + " " + len);
        Arrays.fill(model, (int) off, (int) off + len, (byte) value);
    }

    @ParameterizedTest(name = "cluster {0}, backing {1}")
    @MethodSource("layouts")
    void qemuWrittenImageReadsBack(int cs, String backingKind, @TempDir Path dir) throws Exception {
        final int SIZE = Math.max(8 << 20, 8 * cs) + 1536; // not a multiple of any cluster size above 512
        byte[] model = new byte[SIZE];
        Path backing = null;
        if (backingKind.equals("raw")) {
            backing = dir.resolve("base.raw");
            new Random(cs).nextBytes(model);
            Files.write(backing, model);
        } else if (backingKind.equals("qcow2")) {
            backing = dir.resolve("base.qcow2");
            QemuTools.create(backing, SIZE, cs, null, null);
            List<String> base = new ArrayList<>();
            qemuWrite(backing, model, base, "write -P 0x11", 0, 3 * cs + 100, 0x11);
            qemuWrite(backing, model, base, "write -P 0x22", SIZE / 2 - 700, 5000, 0x22);
            qemuWrite(backing, model, base, "write -P 0x33", SIZE - 4000, 4000, 0x33);
            QemuTools.io(backing, "qcow2", base.toArray(new String[0]));
        }
        Path img = dir.resolve("top.qcow2");
        QemuTools.create(img, SIZE, cs, backing, backingKind.equals("none") ? null : backingKind);
        List<String> cmds = new ArrayList<>();
        qemuWrite(img, model, cmds, "write -P 0xa1", 0, 512, 0xa1);
        qemuWrite(img, model, cmds, "write -P 0xa2", cs + 1000, 3 * cs, 0xa2);
        qemuWrite(img, model, cmds, "write -P 0xa3", SIZE / 3, 70000, 0xa3);
        qemuWrite(img, model, cmds, "write -P 0xa4", SIZE - 1536 - 300, 1836, 0xa4);
        qemuWrite(img, model, cmds, "write -z", 4L * cs, 2 * cs, 0);
        qemuWrite(img, model, cmds, "write -P 0xa5", 4L * cs + 7, 9, 0xa5);
        QemuTools.io(img, "qcow2", cmds.toArray(new String[0]));

        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("top", img, null, true);
            assertEquals("qcow2", n.driver().formatName());
            assertEquals(SIZE, n.length());
            assertEquals(backing != null, n.child(ChildRole.BACKING) != null, "backing chain attached");
            assertArrayEquals(model, env.read(n, 0, SIZE), "whole image");
            Random r = new Random(7);
            for (int i = 0; i < 200; i++) {
                int len = 1 + r.nextInt(3 * cs);
                int off = r.nextInt(SIZE - len);
                assertArrayEquals(Arrays.copyOfRange(model, off, off + len), env.read(n, off, len), "read " + off + "+" + len);
            }
            env.close(n);
            assertEquals(0, env.layer.nodes().size(), "closing the overlay closed its chain");
        }
    }

    @Test
    void versionTwoImageReadsBack(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("v2.qcow2");
        QemuTools.create(img, 4 << 20, 65536, null, null, "compat=0.10");
        QemuTools.io(img, "qcow2", "write -P 0x5a 12345 100000", "write -P 0x6b 3000000 65536");
        byte[] model = new byte[4 << 20];
        Arrays.fill(model, 12345, 112345, (byte) 0x5a);
        Arrays.fill(model, 3000000, 3065536, (byte) 0x6b);
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("v2", img, "qcow2", true);
            assertEquals(2, Qcow2Env.driver(n).version());
            assertArrayEquals(model, env.read(n, 0, model.length));
            env.close(n);
        }
    }

    @Test
    void compressedImageReadsBack(@TempDir Path dir) throws Exception {
        byte[] model = compressible(6 << 20, 3);
        Path raw = dir.resolve("src.raw");
        Files.write(raw, model);
        for (int cs : new int[] {4096, 65536, 2 << 20}) {
            Path img = dir.resolve("c" + cs + ".qcow2");
            QemuTools.img("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=" + cs, raw.toString(),
                    img.toString());
            assertTrue(QemuTools.compressedPercent(img) > 50, "qemu-img really compressed the image");
            try (Qcow2Env env = new Qcow2Env()) {
                BlockNode n = env.open("c", img, null, true);
                assertArrayEquals(model, env.read(n, 0, model.length), "cluster size " + cs);
                Random r = new Random(cs);
                for (int i = 0; i < 50; i++) {
                    int len = 1 + r.nextInt(2 * cs);
                    int off = r.nextInt(model.length - len);
                    assertArrayEquals(Arrays.copyOfRange(model, off, off + len), env.read(n, off, len));
                }
                env.close(n);
            }
        }
    }

    /** Text-like data with random runs: compressible, but not trivially. */
    static byte[] compressible(int size, long seed) {
        byte[] b = new byte[size];
        Random r = new Random(seed);
        byte[] words = "qcow2 cluster refcount backing overlay virtio block ".getBytes(StandardCharsets.US_ASCII);
        for (int i = 0; i < size; i++) {
            b[i] = (i / 4096) % 7 == 3 ? (byte) r.nextInt() : words[(i * 7 + i / 1000) % words.length];
        }
        return b;
    }

    @Test
    void threeLevelChainWithRelativeNames(@TempDir Path dir) throws Exception {
        Path sub = Files.createDirectories(dir.resolve("images"));
        int size = 2 << 20;
        byte[] model = new byte[size];
        new Random(5).nextBytes(model);
        Files.write(sub.resolve("base.raw"), model);
        // names relative to each overlay's directory, as qemu-img writes them with -b relative -F
        QemuTools.img("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", sub.resolve("mid.qcow2").toString());
        QemuTools.io(sub.resolve("mid.qcow2"), "qcow2", "write -P 0x42 100000 200000");
        Arrays.fill(model, 100000, 300000, (byte) 0x42);
        QemuTools.img("create", "-q", "-f", "qcow2", "-b", "images/mid.qcow2", "-F", "qcow2",
                dir.resolve("top.qcow2").toString());
        QemuTools.io(dir.resolve("top.qcow2"), "qcow2", "write -P 0x43 250000 100000", "write -z 1048576 65536");
        Arrays.fill(model, 250000, 350000, (byte) 0x43);
        Arrays.fill(model, 1048576, 1048576 + 65536, (byte) 0);
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode top = env.open("disk", dir.resolve("top.qcow2"), null, true);
            BlockNode mid = top.child(ChildRole.BACKING);
            BlockNode base = mid.child(ChildRole.BACKING);
            assertEquals("disk-backing", mid.name());
            assertEquals("disk-backing2", base.name());
            assertEquals("raw", base.driver().formatName());
            assertTrue(mid.isReadOnly() && base.isReadOnly(), "backing files are read-only");
            assertArrayEquals(model, env.read(top, 0, size));
            env.close(top);
        }
    }

    private static final Pattern MAP = Pattern.compile(
            "\"start\": (\\d+), \"length\": (\\d+), \"depth\": (\\d+), \"present\": (\\w+), \"zero\": (\\w+), \"data\": (\\w+)");

    @ParameterizedTest(name = "cluster {0}")
    @MethodSource("clusterSizes")
    void blockStatusAgreesWithQemuImgMap(int cs, @TempDir Path dir) throws Exception {
        int size = 4 << 20;
        Path base = dir.resolve("base.qcow2");
        QemuTools.create(base, size, cs, null, null);
        QemuTools.io(base, "qcow2", "write -P 1 0 1048576");
        Path img = dir.resolve("top.qcow2");
        QemuTools.create(img, size, cs, base, "qcow2");
        QemuTools.io(img, "qcow2", "write -P 2 " + cs + " " + 3 * cs, "write -z " + 8 * cs + " " + 2 * cs,
                "discard " + 20 * cs + " " + cs, "write -P 3 2000000 100000");
        String map = QemuTools.img("map", "--output=json", "-f", "qcow2", img.toString());
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("top", img, null, true);
            Matcher m = MAP.matcher(map);
            int segments = 0;
            while (m.find()) {
                segments++;
                long start = Long.parseLong(m.group(1));
                long len = Long.parseLong(m.group(2));
                boolean top = Integer.parseInt(m.group(3)) == 0;
                boolean zero = Boolean.parseBoolean(m.group(5));
                boolean data = Boolean.parseBoolean(m.group(6));
                for (long off = start; off < start + len; ) {
                    long at = off;
                    BlockStatus s = env.main("block status", () -> n.blockStatus(at, start + len - at));
                    assertTrue(s.bytes() > 0 && s.bytes() <= start + len - off, "status length at " + off + ": " + s);
                    assertEquals(top, s.allocated(), "allocated at " + off + ": " + s);
                    if (top) {
                        assertEquals(zero && !data, s.zero(), "zero at " + off + ": " + s);
                        assertEquals(data, s.data(), "data at " + off + ": " + s);
                    }
                    off += s.bytes();
                }
            }
            assertTrue(segments >= 5, "qemu-img map output parsed:\n" + map);
            env.close(n);
        }
    }

    static List<Integer> clusterSizes() {
        return List.of(512, 65536);
    }
}
