package io.vblk.block.qcow2;

/**
 * A cluster allocation in flight: guest clusters whose new host clusters
 * are allocated and being written but not yet linked into their L2 table.
 * QEMU's {@code QCowL2Meta} on {@code s->cluster_allocs}; {@link #overlaps}
 * is the test of {@code handle_dependencies}. A request that wants to
 * change the mapping of one of these clusters waits on the run (linked
 * through {@link Qcow2Request#nextWaiter}) and starts over when it ends, so
 * a guest cluster's mapping is only ever changed by the run that owns it.
 * Embedded in its {@link WriteRequest}; no allocation per run.
 */
final class AllocationRun {
    /** First guest cluster index and number of clusters. */
    long first;
    int count;
    int l1Index;
    int l2Index;
    /** Host offset of the first new cluster; the run's clusters are contiguous. */
    long host;
    /** The L2 entries the run replaces (their clusters are freed once it is linked); grown on demand. */
    long[] old = new long[16];
    Qcow2Request waiters;

    /** Makes room for the old entries of {@code n} clusters. */
    void reserve(int n) {
        if (old.length < n) {
            old = new long[Math.max(n, old.length * 2)];
        }
    }

    boolean overlaps(long firstCluster, int n) {
        return firstCluster < first + count && first < firstCluster + n;
    }

    void addWaiter(Qcow2Request r) {
        r.nextWaiter = waiters;
        waiters = r;
    }

    /** Detaches and returns the waiters, oldest first. */
    Qcow2Request takeWaiters() {
        Qcow2Request lifo = waiters;
        waiters = null;
        Qcow2Request fifo = null;
        while (lifo != null) {
            Qcow2Request n = lifo.nextWaiter;
            lifo.nextWaiter = fifo;
            fifo = lifo;
            lifo = n;
        }
        return fifo;
    }

    @Override
    public String toString() {
        return "clusters " + first + "+" + count + " -> 0x" + Long.toHexString(host);
    }
}
