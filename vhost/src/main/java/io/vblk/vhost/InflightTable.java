package io.vblk.vhost;

import io.vblk.virtio.InflightRegion;
import io.vblk.virtio.RamRegion;

/**
 * The inflight region of a vhost-user connection
 * (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD): one shared mapping holding one
 * {@link InflightRegion} per queue, each {@link InflightRegion#queueRegionSize}
 * bytes for rings of up to {@code queueSize} descriptors. libvhost-user's
 * {@code VuDev.inflight_info}. GET_INFLIGHT_FD allocates it (a memfd the
 * front-end keeps across back-end restarts); SET_INFLIGHT_FD maps the one the
 * front-end hands back, after checking the file covers it.
 */
final class InflightTable implements AutoCloseable {
    /** {@code VhostUserInflight}: u64 mmap_size, u64 mmap_offset, u16 num_queues, u16 queue_size, padding. */
    static final int MSG_SIZE = 24;

    final RamRegion map;
    final int numQueues;
    final int queueSize;
    final long mmapSize;

    private InflightTable(RamRegion map, int numQueues, int queueSize, long mmapSize) {
        this.map = map;
        this.numQueues = numQueues;
        this.queueSize = queueSize;
        this.mmapSize = mmapSize;
    }

    /** Bytes for {@code numQueues} queues of {@code queueSize}. */
    static long sizeFor(int numQueues, int queueSize) {
        return numQueues * InflightRegion.queueRegionSize(queueSize);
    }

    static void checkShape(int numQueues, int queueSize, int maxQueues) {
        if (numQueues < 1 || numQueues > maxQueues) {
            throw new Refusal("inflight region for " + numQueues + " queues (the device has " + maxQueues + ")");
        }
        if (queueSize < 1 || queueSize > 32768 || Integer.bitCount(queueSize) != 1) {
            throw new Refusal("inflight queue size " + queueSize + " is not a power of two in 1..32768");
        }
    }

    /** GET_INFLIGHT_FD: a fresh zeroed memfd (version 0: nothing in flight). */
    static InflightTable allocate(int numQueues, int queueSize) {
        long size = sizeFor(numQueues, queueSize);
        return new InflightTable(RamRegion.memfd("vblk-inflight", 0, size), numQueues, queueSize, size);
    }

    /** SET_INFLIGHT_FD: maps the front-end's file once it is known to cover the region; the fd is closed. */
    static InflightTable map(int fd, long mmapSize, long mmapOffset, int numQueues, int queueSize) {
        try {
            long need = sizeFor(numQueues, queueSize);
            if (mmapSize < need) {
                throw new Refusal(String.format("inflight region of 0x%x bytes for %d queues of %d needs 0x%x",
                        mmapSize, numQueues, queueSize, need));
            }
            if ((mmapOffset & 4095) != 0) {
                throw new Refusal(String.format("inflight mmap_offset 0x%x is not page-aligned", mmapOffset));
            }
            PeerFd.requireMappable(fd, mmapOffset, mmapSize, "inflight region");
            return new InflightTable(RamRegion.mapShared(0, mmapSize, fd, mmapOffset), numQueues, queueSize, mmapSize);
        } finally {
            SocketCalls.close(fd);
        }
    }

    /** Queue {@code q}'s region for a ring of {@code num} descriptors, or null if this table cannot hold it. */
    InflightRegion queue(int q, int num) {
        if (q >= numQueues || num > queueSize) {
            return null;
        }
        return new InflightRegion(map.hostAddress() + q * InflightRegion.queueRegionSize(queueSize), num);
    }

    @Override
    public void close() {
        map.close();
    }

    @Override
    public String toString() {
        return String.format("inflight[%d queues of %d, 0x%x bytes]", numQueues, queueSize, mmapSize);
    }
}
