package io.vblk.guest;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The disk {@code vblk boot} uses when no image is given: a sparse raw file
 * with a valid MBR — a tiny boot stub, one active Linux partition starting
 * at sector 2048 and the 0x55AA signature — so the firmware has something to
 * boot from a fresh checkout.
 */
public final class DefaultDisk {
    public static final long DEFAULT_SIZE = 64L << 20;
    public static final int PARTITION_START = 2048;
    public static final int PARTITION_TYPE_LINUX = 0x83;

    private DefaultDisk() {
    }

    /** The first sector of the default disk for a disk of {@code size} bytes. */
    public static byte[] mbr(long size) {
        if (size < (PARTITION_START + 1) * 512L) {
            throw new IllegalArgumentException("a default disk needs at least " + (PARTITION_START + 1) * 512L + " bytes");
        }
        ByteBuffer b = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
        // boot stub: cli; hlt; jmp $-1 — then a message a human reading the sector will recognise
        b.put(new byte[] {(byte) 0xfa, (byte) 0xf4, (byte) 0xeb, (byte) 0xfd});
        b.put("vblk default disk".getBytes(StandardCharsets.US_ASCII));
        long sectors = size / 512 - PARTITION_START;
        b.position(446);
        b.put((byte) 0x80);                       // active
        b.put(new byte[] {(byte) 0xfe, (byte) 0xff, (byte) 0xff}); // CHS start: use LBA
        b.put((byte) PARTITION_TYPE_LINUX);
        b.put(new byte[] {(byte) 0xfe, (byte) 0xff, (byte) 0xff}); // CHS end: use LBA
        b.putInt(PARTITION_START);
        b.putInt((int) Math.min(sectors, 0xffffffffL));
        b.position(510);
        b.put((byte) 0x55).put((byte) 0xaa);
        return b.array();
    }

    /** Writes a default disk of {@code size} bytes (sparse) to {@code path}. */
    public static Path create(Path path, long size) throws IOException {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            ch.write(ByteBuffer.wrap(mbr(size)), 0);
            ch.truncate(size);
            if (ch.size() < size) {
                ch.write(ByteBuffer.wrap(new byte[1]), size - 1);
            }
        }
        return path;
    }
}
