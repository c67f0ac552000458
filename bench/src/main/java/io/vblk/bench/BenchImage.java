package io.vblk.bench;

import com.sun.jna.Memory;

import io.vblk.aio.MainLoop;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;
import io.vblk.block.qcow2.Qcow2;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;

/**
 * The image a {@code file} or {@code qcow2} run uses when the user gave none:
 * a temporary file, fully allocated and filled with zeroes (so reads hit
 * allocated blocks in the page cache, and {@code --verify} finds the zeroes it
 * expects in blocks the run has not written), flushed before the machine
 * starts so no writeback runs during the measurement. Deleted on close.
 */
public final class BenchImage implements AutoCloseable {
    private static final int CHUNK = 1 << 20;

    private final Path path;
    private final String format;
    private final boolean temporary;

    private BenchImage(Path path, String format, boolean temporary) {
        this.path = path;
        this.format = format;
        this.temporary = temporary;
    }

    /** The user's image, used as it is. */
    public static BenchImage existing(Path path, String format) {
        return new BenchImage(path, format, false);
    }

    /** A new raw file of {@code size} bytes, every block written. */
    public static BenchImage rawTemp(long size) {
        Path p = tempFile(".raw");
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
            ByteBuffer zero = ByteBuffer.allocateDirect(CHUNK);
            for (long off = 0; off < size; off += CHUNK) {
                zero.clear().limit((int) Math.min(CHUNK, size - off));
                while (zero.hasRemaining()) {
                    ch.write(zero, off + zero.position());
                }
            }
            ch.force(true);
        } catch (IOException e) {
            deleteQuietly(p);
            throw new UncheckedIOException("cannot fill the temporary image " + p + ": " + e.getMessage(), e);
        }
        return new BenchImage(p, "raw", true);
    }

    /**
     * A new qcow2 image ({@link Qcow2#create}, 64 KiB clusters) of {@code size}
     * bytes with every cluster allocated: written through vblk's own qcow2
     * driver in 1 MiB requests, then flushed.
     */
    public static BenchImage qcow2Temp(long size) {
        Path p = tempFile(".qcow2");
        try {
            Qcow2.create(p, size);
            try (MainLoop loop = new MainLoop("bench-image-fill", new io.vblk.aio.LegacySwitches());
                 BlockLayer layer = new BlockLayer(loop)) {
                loop.watchdog(Duration.ofMinutes(10)).run("fill the qcow2 image", () -> {
                    BlockNode n = layer.openImage("fill", p, "qcow2", false);
                    try {
                        Memory buf = new Memory(CHUNK);
                        buf.clear();
                        IoVec v = new IoVec(1);
                        for (long off = 0; off < size; off += CHUNK) {
                            int len = (int) Math.min(CHUNK, size - off);
                            v.reset();
                            v.add(Memory.nativeValue(buf), len);
                            int r = n.pwriteSync(off, len, v, 0);
                            if (r < 0) {
                                throw new IllegalStateException("write at " + off + " failed: errno " + -r);
                            }
                        }
                        int r = n.flushSync();
                        if (r < 0) {
                            throw new IllegalStateException("flush failed: errno " + -r);
                        }
                    } finally {
                        n.unref();
                    }
                });
            }
            try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
                ch.force(true);
            }
        } catch (IOException | RuntimeException e) {
            deleteQuietly(p);
            throw new IllegalStateException("cannot prepare the temporary qcow2 image " + p + ": " + e.getMessage(), e);
        }
        return new BenchImage(p, "qcow2", true);
    }

    private static Path tempFile(String suffix) {
        try {
            return Files.createTempFile("vblk-bench-", suffix);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create a temporary image: " + e.getMessage(), e);
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException ignored) {
            // best effort
        }
    }

    public Path path() {
        return path;
    }

    /** The format to open it with (null: probe). */
    public String format() {
        return format;
    }

    public boolean temporary() {
        return temporary;
    }

    @Override
    public void close() {
        if (temporary) {
            deleteQuietly(path);
        }
    }
}
