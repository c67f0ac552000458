package io.vblk.block.qcow2;

import io.vblk.block.BlockDriver;
import io.vblk.block.BlockFormat;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;

import java.nio.file.Path;

/**
 * The qcow2 image format for {@link BlockLayer}: probing by magic and
 * version, opening ({@link Qcow2Open#open}) and, once the node exists,
 * opening its backing chain read-only ({@link BackingChain}), and creating
 * images ({@link Qcow2#create}). QEMU's {@code qcow2_probe}, the open half of
 * {@code bdrv_qcow2} and its {@code qcow2_co_create_opts}.
 *
 * <p>{@link #INSTANCE} sizes the L2 cache like QEMU: enough tables to map
 * the whole image, at most {@link #DEFAULT_L2_CACHE_BYTES}; the refcount
 * cache a quarter of that. {@link #withCacheSizes} makes a format with fixed
 * (small) caches, for tests that exercise eviction.
 */
public final class Qcow2Format implements BlockFormat {
    /** The L2 cache limit per image (QEMU's default maximum on Linux). */
    public static final long DEFAULT_L2_CACHE_BYTES = 32L << 20;

    public static final Qcow2Format INSTANCE = new Qcow2Format(0, 0);

    private final int l2Tables;
    private final int refcountBlocks;

    /** The format as the block layer's registry finds it: caches sized like {@link #INSTANCE}. */
    public Qcow2Format() {
        this(0, 0);
    }

    private Qcow2Format(int l2Tables, int refcountBlocks) {
        this.l2Tables = l2Tables;
        this.refcountBlocks = refcountBlocks;
    }

    /** A qcow2 format whose images cache exactly {@code l2Tables} L2 tables and {@code refcountBlocks} refcount blocks (at least 2 and 4: an allocation pins up to three blocks). */
    public static Qcow2Format withCacheSizes(int l2Tables, int refcountBlocks) {
        if (l2Tables < 2 || refcountBlocks < 2) {
            throw new IllegalArgumentException("qcow2 caches need at least 2 entries each");
        }
        return new Qcow2Format(l2Tables, refcountBlocks);
    }

    @Override
    public String name() {
        return "qcow2";
    }

    @Override
    public int probe(byte[] head) {
        if (!Qcow2Header.hasMagic(head) || head.length < 8) {
            return 0;
        }
        // as qcow2_probe: any version from 2 on is qcow2, so an unsupported version gets a clear error, not raw
        return java.nio.ByteBuffer.wrap(head).getInt(4) >= 2 ? 100 : 0;
    }

    @Override
    public BlockDriver open(BlockLayer layer, String nodeName, BlockNode file, boolean readOnly) {
        return Qcow2Open.open(file, readOnly, layer.loop().threadPool(), l2Tables, refcountBlocks);
    }

    /** A new image with the default cluster size ({@link Qcow2#DEFAULT_CLUSTER_SIZE}). */
    @Override
    public void create(Path path, long size, String backingFile, String backingFormat) {
        Qcow2.create(path, size, Qcow2.DEFAULT_CLUSTER_SIZE, backingFile, backingFormat);
    }

    @Override
    public void afterOpen(BlockLayer layer, BlockNode node, boolean readOnly) {
        BackingChain.open(layer, node);
    }
}
