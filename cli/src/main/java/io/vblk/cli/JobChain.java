package io.vblk.cli;

import com.sun.jna.Memory;

import io.vblk.aio.AioContextLock;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;
import io.vblk.block.qcow2.Qcow2;
import io.vblk.guest.Machine;
import io.vblk.job.BlockJobs;
import io.vblk.job.Graph;
import io.vblk.job.Job;
import io.vblk.job.JobOptions;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Arrays;
import java.util.Comparator;

/**
 * The temporary images {@code vblk boot --job} works on, above the boot
 * image (which is only ever read): stream {@code image <- top}, commit
 * {@code image <- mid <- top} (top committed into mid), mirror
 * {@code image <- top} mirrored to a fresh {@code target}. A pattern is
 * written into top before the boot (away from the MBR) and read back after
 * the job, through whatever node the device then uses.
 */
record JobChain(String kind, Path image, String imageFormat, Path mid, Path top, Path target, long size) {
    private static final int PATTERN_BYTES = 256 << 10;

    static JobChain create(Path dir, Path image, String format, String kind) throws IOException {
        String fmt = format != null ? format : probe(image);
        long size = virtualSize(image, fmt);
        Path mid = null;
        Path top = dir.resolve("top.qcow2");
        Path target = null;
        String abs = image.toAbsolutePath().toString();
        if (kind.equals("commit")) {
            mid = dir.resolve("mid.qcow2");
            Qcow2.create(mid, size, Qcow2.DEFAULT_CLUSTER_SIZE, abs, fmt);
            Qcow2.create(top, size, Qcow2.DEFAULT_CLUSTER_SIZE, mid.toString(), "qcow2");
        } else {
            Qcow2.create(top, size, Qcow2.DEFAULT_CLUSTER_SIZE, abs, fmt);
        }
        if (kind.equals("mirror")) {
            target = dir.resolve("target.qcow2");
            Qcow2.create(target, size);
        }
        return new JobChain(kind, image, fmt, mid, top, target, size);
    }

    boolean active() {
        return kind.equals("commit");
    }

    private long patternOffset() {
        return Math.max(1L << 20, (size / 2) & ~0xffffL);
    }

    /** Writes the pattern into top (host side, before the guest runs). */
    void seed(Machine m) {
        if (size < patternOffset() + PATTERN_BYTES) {
            return;
        }
        m.watchdog(Duration.ofSeconds(60)).run("seed the overlay", () -> {
            BlockNode n = m.disk(0).backend().root();
            try (AioContextLock.Held h = n.context().inHomeThread() ? null : n.context().acquire()) {
                byte[] p = pattern();
                Memory mem = new Memory(p.length);
                mem.write(0, p, 0, p.length);
                IoVec v = new IoVec(1);
                v.add(Memory.nativeValue(mem), p.length);
                int r = n.pwriteSync(patternOffset(), p.length, v, 0);
                if (r < 0) {
                    throw new BlockException("writing the pattern into the overlay failed: errno " + -r);
                }
            }
        });
    }

    /** Null if the device still reads the pattern, else what is wrong. */
    String verify(Machine m) {
        if (size < patternOffset() + PATTERN_BYTES) {
            return null;
        }
        return m.watchdog(Duration.ofSeconds(60)).call("read the pattern back", () -> {
            BlockNode n = m.disk(0).backend().root();
            try (AioContextLock.Held h = n.context().inHomeThread() ? null : n.context().acquire()) {
                Memory mem = new Memory(PATTERN_BYTES);
                IoVec v = new IoVec(1);
                v.add(Memory.nativeValue(mem), PATTERN_BYTES);
                int r = n.preadSync(patternOffset(), PATTERN_BYTES, v);
                if (r < 0) {
                    return "reading the device failed: errno " + -r;
                }
                byte[] b = new byte[PATTERN_BYTES];
                mem.read(0, b, 0, b.length);
                return Arrays.equals(b, pattern()) ? null : "the device no longer reads the data written before the job";
            }
        });
    }

    private static byte[] pattern() {
        byte[] b = new byte[PATTERN_BYTES];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) (0x5a ^ i ^ (i >> 9));
        }
        return b;
    }

    /** Starts the job in the main loop. */
    Job start(Machine m, BlockJobs jobs, JobOptions o) {
        return m.watchdog(Duration.ofSeconds(60)).call("start the " + kind + " job", () -> {
            BlockNode top = Graph.skipFilters(m.disk(0).backend().root());
            switch (kind) {
                case "stream":
                    return jobs.stream("stream0", top, null, o);
                case "commit":
                    return jobs.commit("commit0", top, Graph.backing(top), o);
                default: {
                    BlockNode t = m.blockLayer().openImage("target", target, "qcow2", false);
                    try {
                        return jobs.mirror("mirror0", top, t, null, o);
                    } finally {
                        t.unref();
                    }
                }
            }
        });
    }

    static String probe(Path image) {
        return Qcow2.hasMagic(image) ? "qcow2" : "raw";
    }

    static long virtualSize(Path image, String fmt) throws IOException {
        if (!fmt.equals("qcow2")) {
            return Files.size(image);
        }
        try (FileChannel ch = FileChannel.open(image, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(32);
            ch.read(b, 0);
            return b.getLong(24);
        }
    }

    static void deleteTree(Path dir) {
        try (var s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // a temporary directory: best effort
        }
    }
}
