package io.vblk.block;

/**
 * An edge of the block graph from a parent (a node, a backend, a job) to a
 * child node: QEMU's {@code BdrvChild}. It holds a reference to the child
 * and counts how many drained sections of the child its parent was told of.
 */
public final class BlockChild {
    private final BlockParent parent;
    private final String name;
    private final ChildRole role;
    private volatile BlockNode node;
    /** Drained sections of the child this parent was told to quiesce for (home/main thread only). */
    int parentQuiesceCount;

    BlockChild(BlockParent parent, String name, ChildRole role, BlockNode node) {
        this.parent = parent;
        this.name = name;
        this.role = role;
        this.node = node;
    }

    public BlockParent parent() {
        return parent;
    }

    public String name() {
        return name;
    }

    public ChildRole role() {
        return role;
    }

    public BlockNode node() {
        return node;
    }

    void setNode(BlockNode n) {
        node = n;
    }

    @Override
    public String toString() {
        return parent.parentName() + " --" + name + "--> " + (node == null ? "(none)" : node.name());
    }
}
