package io.vblk.txn;

/**
 * One action of a {@link Transaction}: QEMU's {@code BlkActionOps}
 * (blockdev.c). {@code prepare} does everything that can fail and throws a
 * {@link io.vblk.block.BlockException} if it does; then either
 * {@code commit} (every action prepared) or {@code abort} (one failed: every
 * action whose prepare was attempted, the failed one included, undoes what
 * it did), and finally {@code clean} for each, in both cases.
 */
public interface TransactionAction {
    /** For messages: "blockdev-snapshot-sync of 'disk0' to /tmp/s1.qcow2". */
    String describe();

    void prepare();

    void commit();

    void abort();

    void clean();

    /**
     * The machine is being torn down under a hang (a wait threw
     * {@link io.vblk.aio.ClosedContextException}): release whatever the action
     * still holds — a context lock above all — without waiting for anything.
     */
    default void teardown() {
    }
}
