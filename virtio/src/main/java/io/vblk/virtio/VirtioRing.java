package io.vblk.virtio;

/**
 * The split virtqueue's memory layout (virtio 1.2 section 2.7), defined once
 * for the device ({@link VirtQueue}), the vhost-user code and the test kit's
 * driver: descriptor table, available ring and used ring, their flags and the
 * place of the EVENT_IDX fields. QEMU's {@code standard-headers/linux/virtio_ring.h}.
 */
public final class VirtioRing {
    private VirtioRing() {
    }

    /** Largest split-queue size the specification allows. */
    public static final int MAX_SIZE = 32768;

    /** {@code struct vring_desc}: addr (le64), len (le32), flags (le16), next (le16). */
    public static final int DESC_SIZE = 16;
    public static final int DESC_ADDR = 0;
    public static final int DESC_LEN = 8;
    public static final int DESC_FLAGS = 12;
    public static final int DESC_NEXT = 14;
    public static final int DESC_F_NEXT = 1;
    public static final int DESC_F_WRITE = 2;
    public static final int DESC_F_INDIRECT = 4;

    /** {@code struct vring_avail}: flags (le16), idx (le16), ring[size] (le16), used_event (le16). */
    public static final int AVAIL_FLAGS = 0;
    public static final int AVAIL_IDX = 2;
    public static final int AVAIL_RING = 4;
    public static final int AVAIL_F_NO_INTERRUPT = 1;

    /** {@code struct vring_used}: flags (le16), idx (le16), ring[size] of {id le32, len le32}, avail_event (le16). */
    public static final int USED_FLAGS = 0;
    public static final int USED_IDX = 2;
    public static final int USED_RING = 4;
    public static final int USED_ELEM_SIZE = 8;
    public static final int USED_F_NO_NOTIFY = 1;

    /** Bytes of a descriptor table of {@code size} entries. */
    public static long descTableSize(int size) {
        return (long) DESC_SIZE * size;
    }

    /** Bytes of an available ring of {@code size} entries, used_event included. */
    public static long availSize(int size) {
        return AVAIL_RING + 2L * size + 2;
    }

    /** Bytes of a used ring of {@code size} entries, avail_event included. */
    public static long usedSize(int size) {
        return USED_RING + (long) USED_ELEM_SIZE * size + 2;
    }

    /** Offset of used_event (EVENT_IDX) in the available ring. */
    public static int usedEventOffset(int size) {
        return AVAIL_RING + 2 * size;
    }

    /** Offset of avail_event (EVENT_IDX) in the used ring. */
    public static int availEventOffset(int size) {
        return USED_RING + USED_ELEM_SIZE * size;
    }

    /** {@code vring_need_event}: whether moving an index from {@code old} to {@code now} passed {@code event}. */
    public static boolean needEvent(int event, int now, int old) {
        return ((now - event - 1) & 0xffff) < ((now - old) & 0xffff);
    }
}
