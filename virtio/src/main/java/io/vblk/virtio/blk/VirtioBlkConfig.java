package io.vblk.virtio.blk;

/**
 * User-level settings of a virtio-blk device: QEMU's {@code -device
 * virtio-blk-pci} properties ({@code num-queues}, {@code queue-size},
 * {@code serial}, {@code config-wce}).
 */
public record VirtioBlkConfig(int numQueues, int queueSize, String serial, boolean writeCacheConfigurable) {
    public static final int MAX_QUEUES = 64;

    public VirtioBlkConfig {
        if (numQueues < 1 || numQueues > MAX_QUEUES) {
            throw new IllegalArgumentException("num-queues must be 1.." + MAX_QUEUES + ", got " + numQueues);
        }
        if (queueSize < 4 || queueSize > 1024 || Integer.bitCount(queueSize) != 1) {
            throw new IllegalArgumentException("queue-size must be a power of two in 4..1024, got " + queueSize);
        }
        if (serial != null && serial.length() > 20) {
            throw new IllegalArgumentException("serial is at most 20 characters, got " + serial.length());
        }
    }

    public static VirtioBlkConfig defaults(String serial) {
        return new VirtioBlkConfig(1, 256, serial, true);
    }

    public VirtioBlkConfig withQueues(int n) {
        return new VirtioBlkConfig(n, queueSize, serial, writeCacheConfigurable);
    }
}
