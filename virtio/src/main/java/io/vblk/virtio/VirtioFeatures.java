package io.vblk.virtio;

/**
 * Device-independent feature bits of virtio 1.2 (section 6, "Reserved
 * Feature Bits"), as bit numbers and as masks. Device-specific bits (0 to 23)
 * belong to each device's own constants.
 */
public final class VirtioFeatures {
    private VirtioFeatures() {
    }

    public static final int INDIRECT_DESC_BIT = 28;
    public static final int EVENT_IDX_BIT = 29;
    public static final int VERSION_1_BIT = 32;
    public static final int ACCESS_PLATFORM_BIT = 33;
    public static final int RING_PACKED_BIT = 34;
    public static final int IN_ORDER_BIT = 35;
    public static final int NOTIFICATION_DATA_BIT = 38;

    /** VIRTIO_F_INDIRECT_DESC (VIRTIO_RING_F_INDIRECT_DESC): descriptors may point to indirect tables. */
    public static final long INDIRECT_DESC = 1L << INDIRECT_DESC_BIT;
    /** VIRTIO_F_EVENT_IDX: used_event / avail_event notification suppression. */
    public static final long EVENT_IDX = 1L << EVENT_IDX_BIT;
    /** VIRTIO_F_VERSION_1: a modern (non-legacy) device; mandatory here. */
    public static final long VERSION_1 = 1L << VERSION_1_BIT;
    public static final long ACCESS_PLATFORM = 1L << ACCESS_PLATFORM_BIT;
    public static final long RING_PACKED = 1L << RING_PACKED_BIT;
    public static final long IN_ORDER = 1L << IN_ORDER_BIT;
    public static final long NOTIFICATION_DATA = 1L << NOTIFICATION_DATA_BIT;

    /** The ring features {@link VirtQueue} implements; a device offers these plus its own. */
    public static final long RING_FEATURES = INDIRECT_DESC | EVENT_IDX;

    public static boolean has(long features, long mask) {
        return (features & mask) == mask;
    }
}
