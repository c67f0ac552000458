package io.vblk.block;

/** The raw format: anything probes as raw with the lowest confidence. */
public final class RawFormat implements BlockFormat {
    public static final RawFormat INSTANCE = new RawFormat();

    private RawFormat() {
    }

    @Override
    public String name() {
        return "raw";
    }

    @Override
    public int probe(byte[] head) {
        return 1;
    }

    @Override
    public BlockDriver open(BlockLayer layer, String nodeName, BlockNode file, boolean readOnly) {
        return new RawDriver(0, -1);
    }
}
