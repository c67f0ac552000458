package io.vblk.block.qcow2;

import io.vblk.block.BlockException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Creation of qcow2 images: QEMU's {@code qcow2_co_create} as used by
 * {@code qemu-img create -f qcow2} (version 3, compat 1.1, 16-bit
 * refcounts, zlib compression type, no preallocation).
 *
 * <p>Layout of a new image, in clusters: the header (with the backing
 * format and feature name extensions and the backing file name), the
 * refcount table, the refcount blocks counting every cluster of the image so
 * far, then the zeroed L1 table. The table sizes are iterated until the
 * refcount blocks cover the whole layout including themselves. Creation is a
 * control-path operation on the calling thread (plain file I/O, flushed),
 * not an event-loop request; the image is opened afterwards like any other.
 */
public final class Qcow2 {
    public static final int DEFAULT_CLUSTER_SIZE = 65536;
    private static final int REFCOUNT_ORDER = 4;

    private Qcow2() {
    }

    /** Whether {@code path} starts with the qcow2 magic (what format probing looks at); false if unreadable. */
    public static boolean hasMagic(Path path) {
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(4);
            ch.read(b, 0);
            return Qcow2Header.hasMagic(b.array());
        } catch (IOException e) {
            return false;
        }
    }

    /** Creates an image without a backing file and with the default 64 KiB clusters. */
    public static void create(Path path, long size) {
        create(path, size, DEFAULT_CLUSTER_SIZE, null, null);
    }

    /**
     * Creates (or overwrites) {@code path} as a qcow2 image of {@code size}
     * bytes with {@code clusterSize}-byte clusters (a power of two, 512 B to
     * 2 MiB). {@code backingFile} (nullable) is stored as written, so a
     * relative name is resolved against the new image's directory when it is
     * opened; {@code backingFormat} (nullable, "raw" or "qcow2" usually) is
     * stored in the backing format extension. A {@code size} of 0 with a
     * backing file takes the backing file's virtual size.
     */
    public static void create(Path path, long size, int clusterSize, String backingFile, String backingFormat) {
        String image = path.toString();
        if (clusterSize < 512 || clusterSize > (2 << 20) || Integer.bitCount(clusterSize) != 1) {
            throw new BlockException("cannot create '" + image + "': cluster size " + clusterSize
                    + " is not a power of two between 512 and 2097152");
        }
        if (size < 0) {
            throw new BlockException("cannot create '" + image + "': negative size " + size);
        }
        if (backingFormat != null && backingFile == null) {
            throw new BlockException("cannot create '" + image + "': a backing format needs a backing file");
        }
        if (backingFile != null && backingFile.isEmpty()) {
            throw new BlockException("cannot create '" + image + "': empty backing file name");
        }
        if (backingFormat != null && !backingFormat.matches("[a-z0-9_-]{1,31}")) {
            throw new BlockException("cannot create '" + image + "': invalid backing format '" + backingFormat + "'");
        }
        if (size == 0 && backingFile != null) {
            size = backingSize(path, backingFile, backingFormat, image);
        }
        int bits = Integer.numberOfTrailingZeros(clusterSize);
        Layout g = new Layout(bits, size, REFCOUNT_ORDER);
        long l1Entries = Layout.requiredL1Entries(size, bits);
        if (l1Entries * 8 > Layout.MAX_L1_BYTES) {
            throw new BlockException("cannot create '" + image + "': " + size + " bytes need an L1 table larger than "
                    + Layout.MAX_L1_BYTES + " bytes; use a larger cluster size");
        }
        long l1Clusters = Math.max(1, (l1Entries * 8 + g.clusterMask) >>> bits);
        long tableClusters = 1;
        long blocks = 1;
        for (;;) {
            long total = 1 + tableClusters + blocks + l1Clusters;
            long b = (total + g.refblockEntries - 1) >>> g.refblockBits;
            long t = (b * 8 + g.clusterMask) >>> bits;
            if (b == blocks && t == tableClusters) {
                break;
            }
            blocks = Math.max(blocks, b);
            tableClusters = Math.max(tableClusters, t);
        }
        long total = 1 + tableClusters + blocks + l1Clusters;
        Qcow2Header h = new Qcow2Header();
        h.image = image;
        h.version = 3;
        h.clusterBits = bits;
        h.size = size;
        h.l1Size = (int) l1Entries;
        h.refcountTableOffset = (long) clusterSize;
        h.refcountTableClusters = (int) tableClusters;
        h.l1TableOffset = (1 + tableClusters + blocks) << bits;
        h.refcountOrder = REFCOUNT_ORDER;
        h.backingFile = backingFile;
        h.backingFormat = backingFormat;
        byte[] cluster0 = h.encodeCluster0();

        ByteBuffer table = ByteBuffer.allocate((int) (tableClusters << bits)).order(ByteOrder.BIG_ENDIAN);
        for (int i = 0; i < blocks; i++) {
            table.putLong(i * 8, (1 + tableClusters + i) << bits);
        }
        ByteBuffer refblocks = ByteBuffer.allocate((int) (blocks << bits)).order(ByteOrder.BIG_ENDIAN);
        for (long c = 0; c < total; c++) {
            int block = (int) (c >>> g.refblockBits);
            Refcounts.set(refblocks, block << bits, REFCOUNT_ORDER, (int) (c & (g.refblockEntries - 1)), 1);
        }
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(ch, ByteBuffer.wrap(cluster0), 0);
            writeFully(ch, table, clusterSize);
            writeFully(ch, refblocks, (1 + tableClusters) << bits);
            writeFully(ch, ByteBuffer.allocate((int) (l1Clusters << bits)), h.l1TableOffset);
            ch.force(true);
        } catch (IOException e) {
            throw new BlockException("cannot create '" + image + "': " + e.getMessage(), e);
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b, long pos) throws IOException {
        b.rewind();
        while (b.hasRemaining()) {
            pos += ch.write(b, pos);
        }
    }

    /** The virtual size of the backing file: a qcow2 header's size, or the file length of anything else. */
    private static long backingSize(Path image, String backingFile, String backingFormat, String name) {
        Path p = BackingChain.resolve(backingFile, image, name);
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.READ)) {
            ByteBuffer head = ByteBuffer.allocate(Qcow2Header.PROBE_BYTES);
            while (head.hasRemaining() && ch.read(head, head.position()) > 0) {
                // read the fixed header
            }
            byte[] b = head.array();
            boolean qcow2 = "qcow2".equals(backingFormat) || (backingFormat == null && Qcow2Header.hasMagic(b));
            if (qcow2) {
                Qcow2Header.clusterBits(b, head.position(), p.toString());
                return ByteBuffer.wrap(b).getLong(24);
            }
            return Files.size(p);
        } catch (IOException e) {
            throw new BlockException("cannot create '" + name + "': cannot read backing file '" + p + "' for its size: "
                    + e.getMessage(), e);
        }
    }
}
