package io.vblk.virtio;

/**
 * A device's device-specific configuration space and its generation
 * counter (virtio 1.2 section 2.5.1): QEMU's {@code vdev->config} with
 * {@code generation}, and the little-endian accessors of
 * {@code virtio_config_modern_readX}. Any thread; this object's monitor is a
 * leaf lock.
 */
final class VirtioConfigSpace {
    private final byte[] bytes;
    private int generation;

    VirtioConfigSpace(int size) {
        if (size < 0 || size > 4096) {
            throw new IllegalArgumentException("config size " + size + " outside 0..4096");
        }
        bytes = new byte[size];
    }

    int size() {
        return bytes.length;
    }

    synchronized int generation() {
        return generation;
    }

    /** The driver must re-read the space (a configuration-change interrupt follows). */
    synchronized void bumpGeneration() {
        generation++;
    }

    /** {@code size} bytes (1, 2, 4 or 8) at {@code offset}, little-endian; bytes past the end read as 0. */
    synchronized long read(int offset, int size) {
        long v = 0;
        for (int i = size - 1; i >= 0; i--) {
            int o = offset + i;
            v = (v << 8) | (o >= 0 && o < bytes.length ? bytes[o] & 0xff : 0);
        }
        return v;
    }

    /** Stores {@code size} little-endian bytes of {@code value} at {@code offset}; a change bumps the generation. */
    synchronized void write(int offset, int size, long value) {
        boolean changed = false;
        for (int i = 0; i < size; i++) {
            byte b = (byte) (value >>> (8 * i));
            if (bytes[offset + i] != b) {
                bytes[offset + i] = b;
                changed = true;
            }
        }
        if (changed) {
            generation++;
        }
    }
}
