package io.vblk.block.qcow2;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.vblk.block.BlockFlags;
import io.vblk.block.BlockNode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Images created and written by vblk are valid for QEMU: random writes,
 * write-zeroes (with and without unmap) and discards, with no backing file
 * or over a raw or qcow2 one, then {@code qemu-img check} finds no error and
 * no leak, {@code qemu-img compare} finds them equal to a raw reference with
 * the same operations applied, and {@code qemu-io read -P} confirms patterns.
 */
class VblkImagesQemuCheckTest {

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

    @ParameterizedTest(name = "cluster {0}, backing {1}")
    @MethodSource("layouts")
    void randomOperationsPassQemuImgCheckAndCompare(int cs, String backingKind, @TempDir Path dir) throws Exception {
        int size = Math.max(6 << 20, 6 * cs) + 512;
        byte[] initial = new byte[size];
        String backingName = null;
        if (backingKind.equals("raw")) {
            new Random(cs).nextBytes(initial);
            Files.write(dir.resolve("base.raw"), initial);
            backingName = "base.raw";
        } else if (backingKind.equals("qcow2")) {
            Path base = dir.resolve("base.qcow2");
            QemuTools.create(base, size, 65536, null, null);
            QemuTools.io(base, "qcow2", "write -P 0x77 0 " + size / 2, "write -P 0x78 " + (size - 100000) + " 100000");
            java.util.Arrays.fill(initial, 0, size / 2, (byte) 0x77);
            java.util.Arrays.fill(initial, size - 100000, size, (byte) 0x78);
            backingName = "base.qcow2";
        }
        Path img = dir.resolve("top.qcow2");
        Qcow2.create(img, size, cs, backingName, backingName == null ? null : backingKind);
        ImageModel model = new ImageModel(initial, cs);
        Random r = new Random(cs * 31L + backingKind.hashCode());
        int ops = cs >= (1 << 20) ? 120 : 400;
        int maxLen = Math.max(3 * cs, 200_000);
        List<long[]> patterns = new ArrayList<>();
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("disk", img, null, false);
            for (int i = 0; i < ops; i++) {
                int len = 1 + r.nextInt(maxLen);
                long off = (long) (r.nextDouble() * (size - len));
                int kind = r.nextInt(10);
                if (kind < 6) {
                    byte[] d = new byte[len];
                    r.nextBytes(d);
                    env.write(n, off, d);
                    model.write(off, d);
                } else if (kind < 8) {
                    int flags = r.nextBoolean() ? BlockFlags.MAY_UNMAP : 0;
                    env.writeZeroes(n, off, len, flags);
                    model.zero(off, len);
                } else if (kind < 9) {
                    long a = off / cs * cs; // mostly aligned discards, sometimes not
                    long dl = r.nextBoolean() ? (len + cs - 1) / cs * cs : len;
                    dl = Math.min(dl, size - a);
                    env.discard(n, a, dl);
                    model.discard(a, dl);
                } else {
                    env.flush(n);
                }
            }
            // final non-overlapping pattern writes, for qemu-io to verify
            for (int p = 0; p < 4; p++) {
                long off = (long) p * (size / 4) + r.nextInt(cs);
                int len = 1 + r.nextInt(Math.min(size / 4 - cs, 3 * cs));
                byte[] d = Qcow2Env.pattern(len, 0xc0 + p);
                env.write(n, off, d);
                model.write(off, d);
                patterns.add(new long[] {0xc0 + p, off, len});
            }
            assertArrayEquals(model.bytes, env.read(n, 0, size), "contents before close");
            env.close(n);
            assertEquals(0, env.layer.nodes().size());
        }
        QemuTools.check(img);
        Path raw = dir.resolve("reference.raw");
        Files.write(raw, model.bytes);
        QemuTools.compareWithRaw(img, raw);
        List<String> reads = new ArrayList<>();
        for (long[] p : patterns) {
            reads.add("read -P 0x" + Long.toHexString(p[0]) + " " + p[1] + " " + p[2]);
        }
        QemuTools.io(img, "qcow2", reads.toArray(new String[0]));
        try (Qcow2Env env = new Qcow2Env()) {
            BlockNode n = env.open("again", img, null, true);
            assertArrayEquals(model.bytes, env.read(n, 0, size), "contents after reopening");
            env.close(n);
        }
    }

    @Test
    void writesIntoQemuMadeImagesPassCheck(@TempDir Path dir) throws Exception {
        for (String compat : new String[] {"1.1", "0.10"}) {
            Path img = dir.resolve("q" + compat + ".qcow2");
            int size = 3 << 20;
            QemuTools.create(img, size, 65536, null, null, "compat=" + compat);
            QemuTools.io(img, "qcow2", "write -P 0x10 0 1000000");
            ImageModel model = new ImageModel(new byte[size], 65536);
            model.write(0, Qcow2Env.pattern(1000000, 0x10));
            try (Qcow2Env env = new Qcow2Env()) {
                BlockNode n = env.open("q", img, null, false);
                Random r = new Random(9);
                for (int i = 0; i < 100; i++) {
                    int len = 1 + r.nextInt(150_000);
                    long off = (long) (r.nextDouble() * (size - len));
                    byte[] d = new byte[len];
                    r.nextBytes(d);
                    env.write(n, off, d);
                    model.write(off, d);
                    if (i % 10 == 0) {
                        env.writeZeroes(n, off, len / 2, BlockFlags.MAY_UNMAP);
                        model.zero(off, len / 2);
                    }
                }
                env.discard(n, 0, 65536 * 3);
                model.discard(0, 65536 * 3);
                env.close(n);
            }
            QemuTools.check(img);
            Path raw = dir.resolve("ref" + compat + ".raw");
            Files.write(raw, model.bytes);
            QemuTools.compareWithRaw(img, raw);
        }
    }

    @Test
    void otherRefcountWidthsAreWrittenCorrectly(@TempDir Path dir) throws Exception {
        for (int bits : new int[] {1, 2, 8, 32, 64}) {
            Path img = dir.resolve("r" + bits + ".qcow2");
            int size = 2 << 20;
            QemuTools.create(img, size, 4096, null, null, "refcount_bits=" + bits);
            ImageModel model = new ImageModel(new byte[size], 4096);
            try (Qcow2Env env = new Qcow2Env()) {
                BlockNode n = env.open("r", img, null, false);
                Random r = new Random(bits);
                for (int i = 0; i < 60; i++) {
                    int len = 1 + r.nextInt(100_000);
                    long off = (long) (r.nextDouble() * (size - len));
                    byte[] d = new byte[len];
                    r.nextBytes(d);
                    env.write(n, off, d);
                    model.write(off, d);
                    if (i % 7 == 0) {
                        long a = off / 4096 * 4096;
                        long dl = Math.min(40960, size - a);
                        env.discard(n, a, dl);
                        model.discard(a, dl);
                    }
                }
                env.close(n);
            }
            QemuTools.check(img);
            Path raw = dir.resolve("ref" + bits + ".raw");
            Files.write(raw, model.bytes);
            QemuTools.compareWithRaw(img, raw);
        }
    }
}
