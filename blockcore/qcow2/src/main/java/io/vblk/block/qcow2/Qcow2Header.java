package io.vblk.block.qcow2;

import io.vblk.block.BlockException;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The qcow2 image header with its extensions, parsed and validated: QEMU's
 * {@code QCowHeader} and the header checks of {@code qcow2_do_open} and
 * {@code qcow2_read_extensions} (block/qcow2.c), and the header writer of
 * {@code qcow2_update_header} for new images.
 *
 * <p>Everything comes from untrusted bytes, so every offset and length is
 * checked before use and every problem is a {@link BlockException} naming the
 * image and the field; a corrupt header never becomes an array index out of
 * range or a huge allocation. Features that cannot be read (encryption,
 * external data file, extended L2, zstd, unknown incompatible bits) are named
 * by {@link #unsupportedForReading()}; those that only prevent writing (dirty,
 * corrupt, internal snapshots) by {@link #unsupportedForWriting()}.
 */
final class Qcow2Header {
    static final int MAGIC = 0x514649fb;
    static final int V2_LENGTH = 72;
    static final int V3_MIN_LENGTH = 104;
    /** The v3 header length vblk writes: up to the compression type byte, padded to 8. */
    static final int V3_LENGTH = 112;
    static final int MAX_BACKING_NAME = 1023;

    static final int EXT_END = 0;
    static final int EXT_BACKING_FORMAT = 0xe2792aca;
    static final int EXT_FEATURE_TABLE = 0x6803f857;
    static final int EXT_BITMAPS = 0x23852875;
    static final int EXT_CRYPTO = 0x0537be77;
    static final int EXT_DATA_FILE = 0x44415441;

    static final long INCOMPAT_DIRTY = 1L;
    static final long INCOMPAT_CORRUPT = 1L << 1;
    static final long INCOMPAT_DATA_FILE = 1L << 2;
    static final long INCOMPAT_COMPRESSION = 1L << 3;
    static final long INCOMPAT_EXTL2 = 1L << 4;
    static final long INCOMPAT_KNOWN = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION
            | INCOMPAT_EXTL2;

    /** Byte offsets of header fields vblk rewrites in place. */
    static final int OFF_REFTABLE = 48;
    static final int OFF_AUTOCLEAR = 88;

    String image = "?";
    int version;
    long backingFileOffset;
    int backingFileSize;
    int clusterBits;
    long size;
    int cryptMethod;
    int l1Size;
    long l1TableOffset;
    long refcountTableOffset;
    int refcountTableClusters;
    int nbSnapshots;
    long snapshotsOffset;
    long incompatible;
    long compatible;
    long autoclear;
    int refcountOrder = 4;
    int headerLength = V2_LENGTH;
    int compressionType;
    String backingFile;
    String backingFormat;
    String dataFile;
    /** Feature names from the feature name table: key = type << 8 | bit. */
    final Map<Integer, String> featureNames = new LinkedHashMap<>();

    /** Bytes of the fixed header needed before the cluster size is known. */
    static final int PROBE_BYTES = V3_LENGTH;

    static boolean hasMagic(byte[] head) {
        return head.length >= 4 && ByteBuffer.wrap(head).getInt(0) == MAGIC;
    }

    /** Reads the cluster size from the first bytes, so the caller can read all of cluster 0. */
    static int clusterBits(byte[] head, int len, String image) {
        if (len < V2_LENGTH) {
            throw corrupt(image, "truncated header: the file has " + len + " bytes, a qcow2 header needs at least "
                    + V2_LENGTH);
        }
        ByteBuffer b = ByteBuffer.wrap(head, 0, len).order(ByteOrder.BIG_ENDIAN);
        if (b.getInt(0) != MAGIC) {
            throw corrupt(image, "not a qcow2 image (magic 0x" + Integer.toHexString(b.getInt(0)) + ", expected 0x"
                    + Integer.toHexString(MAGIC) + ")");
        }
        int v = b.getInt(4);
        if (v != 2 && v != 3) {
            throw unsupported(image, "qcow2 version " + v + " (vblk reads versions 2 and 3)");
        }
        int bits = b.getInt(20);
        if (bits < Layout.MIN_CLUSTER_BITS || bits > Layout.MAX_CLUSTER_BITS) {
            throw unsupported(image, "cluster_bits " + bits + " (cluster sizes 512 B to 2 MiB are supported)");
        }
        return bits;
    }

    /**
     * Parses cluster 0 ({@code len} valid bytes of {@code buf}) of an image file
     * of {@code fileLength} bytes. Throws a {@link BlockException} for anything
     * malformed; feature support is judged separately.
     */
    static Qcow2Header parse(byte[] buf, int len, long fileLength, String image) {
        int bits = clusterBits(buf, len, image);
        ByteBuffer b = ByteBuffer.wrap(buf, 0, len).order(ByteOrder.BIG_ENDIAN);
        Qcow2Header h = new Qcow2Header();
        h.image = image;
        h.version = b.getInt(4);
        h.backingFileOffset = b.getLong(8);
        h.backingFileSize = b.getInt(16);
        h.clusterBits = bits;
        h.size = b.getLong(24);
        h.cryptMethod = b.getInt(32);
        h.l1Size = b.getInt(36);
        h.l1TableOffset = b.getLong(40);
        h.refcountTableOffset = b.getLong(48);
        h.refcountTableClusters = b.getInt(56);
        h.nbSnapshots = b.getInt(60);
        h.snapshotsOffset = b.getLong(64);
        int cs = 1 << bits;
        if (h.version >= 3) {
            if (len < V3_MIN_LENGTH) {
                throw corrupt(image, "truncated version 3 header: " + len + " bytes, at least " + V3_MIN_LENGTH
                        + " needed");
            }
            h.incompatible = b.getLong(72);
            h.compatible = b.getLong(80);
            h.autoclear = b.getLong(88);
            h.refcountOrder = b.getInt(96);
            h.headerLength = b.getInt(100);
            if (h.headerLength < V3_MIN_LENGTH || (h.headerLength & 7) != 0 || h.headerLength > cs) {
                throw corrupt(image, "invalid header_length " + Integer.toUnsignedString(h.headerLength));
            }
            if (h.headerLength > len) {
                throw corrupt(image, "truncated header: header_length is " + h.headerLength + " but the file has "
                        + len + " bytes");
            }
            if (h.headerLength > 104) {
                h.compressionType = buf[104] & 0xff;
            }
        }
        h.validate(fileLength);
        h.readExtensions(b, len);
        if (h.backingFileOffset != 0) {
            int off = (int) h.backingFileOffset;
            if (off + h.backingFileSize > len) {
                throw corrupt(image, "truncated header: the backing file name ends past the end of the file");
            }
            h.backingFile = new String(buf, off, h.backingFileSize, StandardCharsets.UTF_8);
        }
        return h;
    }

    private void validate(long fileLength) {
        int cs = 1 << clusterBits;
        if (size < 0) {
            throw corrupt(image, "negative virtual size " + size);
        }
        if (refcountOrder < 0 || refcountOrder > 6) {
            throw corrupt(image, "invalid refcount_order " + refcountOrder + " (at most 6, i.e. 64-bit refcounts)");
        }
        long l1Bytes = (l1Size & 0xffffffffL) * 8;
        if (l1Size < 0 || l1Bytes > Layout.MAX_L1_BYTES) {
            throw corrupt(image, "L1 table of " + Integer.toUnsignedString(l1Size) + " entries is too large");
        }
        long needed = Layout.requiredL1Entries(size, clusterBits);
        if (l1Size < needed) {
            throw corrupt(image, "L1 table has " + l1Size + " entries but a virtual size of " + size + " needs "
                    + needed);
        }
        if (l1Size > 0) {
            checkTable("L1 table", l1TableOffset, l1Bytes, cs, fileLength);
        }
        long rtBytes = (refcountTableClusters & 0xffffffffL) << clusterBits;
        if (refcountTableClusters <= 0 || rtBytes > Layout.MAX_REFTABLE_BYTES) {
            throw corrupt(image, "invalid refcount_table_clusters " + Integer.toUnsignedString(refcountTableClusters));
        }
        checkTable("refcount table", refcountTableOffset, rtBytes, cs, fileLength);
        if (nbSnapshots < 0 || nbSnapshots > 65536) {
            throw corrupt(image, "invalid nb_snapshots " + Integer.toUnsignedString(nbSnapshots));
        }
        if (nbSnapshots > 0 && (snapshotsOffset & (cs - 1)) != 0) {
            throw corrupt(image, "snapshot table offset 0x" + Long.toHexString(snapshotsOffset) + " is not cluster aligned");
        }
        if (backingFileOffset != 0) {
            if (backingFileSize < 0 || backingFileSize > MAX_BACKING_NAME) {
                throw corrupt(image, "backing file name of " + Integer.toUnsignedString(backingFileSize)
                        + " bytes (at most " + MAX_BACKING_NAME + ")");
            }
            if (backingFileOffset < 0 || backingFileOffset + backingFileSize > cs) {
                throw corrupt(image, "backing file name at 0x" + Long.toHexString(backingFileOffset)
                        + " lies outside the first cluster");
            }
        }
    }

    private void checkTable(String what, long offset, long bytes, int cs, long fileLength) {
        if (offset <= 0 || (offset & (cs - 1)) != 0) {
            throw corrupt(image, what + " offset 0x" + Long.toHexString(offset) + " is not a cluster-aligned offset");
        }
        if (offset + bytes > fileLength) {
            throw corrupt(image, "truncated image: the " + what + " (" + bytes + " bytes at 0x" + Long.toHexString(offset)
                    + ") ends past the end of the file (" + fileLength + " bytes)");
        }
    }

    /** Walks the extension area after the header up to the backing file name or the end of cluster 0. */
    private void readExtensions(ByteBuffer b, int len) {
        int pos = version >= 3 ? headerLength : V2_LENGTH;
        int end = len;
        if (backingFileOffset != 0 && backingFileOffset > pos) {
            end = (int) Math.min(end, backingFileOffset);
        }
        while (pos + 8 <= end) {
            int type = b.getInt(pos);
            long extLen = b.getInt(pos + 4) & 0xffffffffL;
            pos += 8;
            if (type == EXT_END) {
                return;
            }
            if (pos + extLen > end) {
                throw corrupt(image, "header extension 0x" + Integer.toHexString(type) + " of " + extLen
                        + " bytes overruns the header area");
            }
            int l = (int) extLen;
            switch (type) {
                case EXT_BACKING_FORMAT:
                    backingFormat = string(b, pos, l);
                    break;
                case EXT_DATA_FILE:
                    dataFile = string(b, pos, l);
                    break;
                case EXT_FEATURE_TABLE:
                    for (int i = 0; i + 48 <= l; i += 48) {
                        int ftype = b.get(pos + i) & 0xff;
                        int bit = b.get(pos + i + 1) & 0xff;
                        String name = string(b, pos + i + 2, 46);
                        int nul = name.indexOf('\0');
                        featureNames.put(ftype << 8 | bit, nul >= 0 ? name.substring(0, nul) : name);
                    }
                    break;
                default:
                    break; // bitmaps, crypto header and unknown extensions: not needed to read or write data
            }
            pos += (l + 7) & ~7;
        }
    }

    private static String string(ByteBuffer b, int pos, int len) {
        byte[] s = new byte[len];
        b.get(pos, s);
        return new String(s, StandardCharsets.UTF_8);
    }

    /** Why the image cannot be opened at all, or null. */
    String unsupportedForReading() {
        if (cryptMethod != 0) {
            return "encryption (crypt_method " + cryptMethod + (cryptMethod == 1 ? ", AES" : cryptMethod == 2 ? ", LUKS" : "")
                    + ")";
        }
        if ((incompatible & INCOMPAT_DATA_FILE) != 0) {
            return "external data file" + (dataFile != null ? " '" + dataFile + "'" : "") + " (incompatible feature bit 2)";
        }
        if ((incompatible & INCOMPAT_EXTL2) != 0) {
            return "extended L2 entries / subclusters (incompatible feature bit 4)";
        }
        if ((incompatible & INCOMPAT_COMPRESSION) != 0 || compressionType != 0) {
            return "compression type " + (compressionType == 1 ? "zstd" : String.valueOf(compressionType))
                    + " (only zlib/deflate compressed clusters are supported)";
        }
        long unknown = incompatible & ~INCOMPAT_KNOWN;
        if (unknown != 0) {
            List<String> names = new ArrayList<>();
            for (int bit = 0; bit < 64; bit++) {
                if ((unknown & (1L << bit)) != 0) {
                    String n = featureNames.get(bit);
                    names.add(n != null ? "'" + n + "' (bit " + bit + ")" : "bit " + bit);
                }
            }
            return "unknown incompatible feature " + String.join(", ", names);
        }
        return null;
    }

    /** Why the image may be read but not written, or null. */
    String unsupportedForWriting() {
        if ((incompatible & INCOMPAT_CORRUPT) != 0) {
            return "the image is marked corrupt (incompatible feature bit 1); repair it with 'qemu-img check -r all'";
        }
        if ((incompatible & INCOMPAT_DIRTY) != 0) {
            return "the dirty bit is set (lazy refcounts were in use); repair it with 'qemu-img check -r all'";
        }
        if (nbSnapshots > 0) {
            return "internal snapshots (" + nbSnapshots + " in the image)";
        }
        return null;
    }

    // ------------------------------------------------------------------ writing (image creation)

    /**
     * Cluster 0 of a new image: the header, the backing-format and
     * feature-name extensions, the end marker and the backing file name.
     */
    byte[] encodeCluster0() {
        int cs = 1 << clusterBits;
        ByteBuffer b = ByteBuffer.allocate(cs).order(ByteOrder.BIG_ENDIAN);
        b.putInt(0, MAGIC);
        b.putInt(4, version);
        b.putInt(20, clusterBits);
        b.putLong(24, size);
        b.putInt(32, 0);
        b.putInt(36, l1Size);
        b.putLong(40, l1TableOffset);
        b.putLong(48, refcountTableOffset);
        b.putInt(56, refcountTableClusters);
        b.putInt(60, 0);
        b.putLong(64, 0);
        int pos = V2_LENGTH;
        if (version >= 3) {
            b.putLong(72, 0);
            b.putLong(80, compatible); // 0 for a new image; kept when a header is rewritten
            b.putLong(88, 0);
            b.putInt(96, refcountOrder);
            b.putInt(100, V3_LENGTH);
            pos = V3_LENGTH;
        }
        List<byte[]> exts = new ArrayList<>();
        List<Integer> types = new ArrayList<>();
        if (backingFormat != null) {
            types.add(EXT_BACKING_FORMAT);
            exts.add(backingFormat.getBytes(StandardCharsets.UTF_8));
        }
        byte[] name = backingFile == null ? new byte[0] : backingFile.getBytes(StandardCharsets.UTF_8);
        int used = pos + 8 + name.length;
        for (byte[] d : exts) {
            used += 8 + ((d.length + 7) & ~7);
        }
        byte[] table = featureTable();
        if (version >= 3 && used + 8 + table.length <= cs) {
            types.add(EXT_FEATURE_TABLE); // optional: left out when a small cluster has no room for it
            exts.add(table);
        }
        for (int i = 0; i < exts.size(); i++) {
            byte[] d = exts.get(i);
            int need = pos + 8 + ((d.length + 7) & ~7) + 8;
            if (need > cs) {
                throw new BlockException("cannot create '" + image + "': the header extensions do not fit in one "
                        + cs + "-byte cluster");
            }
            b.putInt(pos, types.get(i));
            b.putInt(pos + 4, d.length);
            b.put(pos + 8, d);
            pos += 8 + ((d.length + 7) & ~7);
        }
        b.putInt(pos, EXT_END);
        b.putInt(pos + 4, 0);
        pos += 8;
        if (backingFile != null) {
            if (name.length > MAX_BACKING_NAME) {
                throw new BlockException("cannot create '" + image + "': the backing file name has " + name.length
                        + " bytes (at most " + MAX_BACKING_NAME + ")");
            }
            if (pos + name.length > cs) {
                throw new BlockException("cannot create '" + image + "': the backing file name does not fit in the "
                        + cs + "-byte header cluster; use a shorter name or a larger cluster size");
            }
            b.put(pos, name);
            b.putLong(8, pos);
            b.putInt(16, name.length);
        }
        return b.array();
    }

    /** The feature name table QEMU writes, so tools can name the bits of vblk's images. */
    private static byte[] featureTable() {
        String[][] f = {
            {"0", "0", "dirty bit"}, {"0", "1", "corrupt bit"}, {"0", "2", "external data file"},
            {"0", "3", "compression type"}, {"0", "4", "extended L2 entries"}, {"1", "0", "lazy refcounts"},
            {"2", "0", "bitmaps"}, {"2", "1", "raw external data"},
        };
        ByteBuffer t = ByteBuffer.allocate(48 * f.length);
        for (int i = 0; i < f.length; i++) {
            t.put(48 * i, (byte) Integer.parseInt(f[i][0]));
            t.put(48 * i + 1, (byte) Integer.parseInt(f[i][1]));
            t.put(48 * i + 2, f[i][2].getBytes(StandardCharsets.US_ASCII));
        }
        return t.array();
    }

    static BlockException corrupt(String image, String problem) {
        return new BlockException("qcow2 image '" + image + "': " + problem);
    }

    static BlockException unsupported(String image, String feature) {
        return new BlockException("qcow2 image '" + image + "': unsupported feature: " + feature);
    }

    @Override
    public String toString() {
        return "qcow2 v" + version + " size=" + size + " cluster_bits=" + clusterBits + " l1_size=" + l1Size
                + " refcount_order=" + refcountOrder + (backingFile != null ? " backing='" + backingFile + "'" : "");
    }
}
