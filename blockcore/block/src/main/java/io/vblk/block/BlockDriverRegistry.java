package io.vblk.block;

import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;

/**
 * The image formats known to the block layer, found at start-up rather than
 * named by it: QEMU's {@code bdrv_register} called from each driver's
 * {@code block_init} constructor. A format module lists its {@link BlockFormat}
 * in {@code META-INF/services/io.vblk.block.BlockFormat}; this class loads
 * them once, so {@code io.vblk.block} never imports a format package and a new
 * format is added without touching the graph code. Raw is built in: it is the
 * format every probe falls back to.
 */
public final class BlockDriverRegistry {
    private static final List<BlockFormat> DISCOVERED = discover();
    private static final List<BlockProtocol> PROTOCOLS = discoverProtocols();

    private BlockDriverRegistry() {
    }

    /** Raw first, then every format a module registered, in class-path order. */
    public static List<BlockFormat> formats() {
        return DISCOVERED;
    }

    /** Every protocol driver a module registered ({@code rbd}), in class-path order; the file protocol is built in. */
    public static List<BlockProtocol> protocols() {
        return PROTOCOLS;
    }

    private static List<BlockProtocol> discoverProtocols() {
        List<BlockProtocol> out = new ArrayList<>();
        ServiceLoader.load(BlockProtocol.class, BlockDriverRegistry.class.getClassLoader()).forEach(out::add);
        return List.copyOf(out);
    }

    private static List<BlockFormat> discover() {
        List<BlockFormat> out = new ArrayList<>();
        out.add(RawFormat.INSTANCE);
        for (BlockFormat f : ServiceLoader.load(BlockFormat.class, BlockDriverRegistry.class.getClassLoader())) {
            if (!f.name().equals(RawFormat.INSTANCE.name())) {
                out.add(f);
            }
        }
        return List.copyOf(out);
    }
}
