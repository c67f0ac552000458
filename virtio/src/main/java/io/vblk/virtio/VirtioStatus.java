package io.vblk.virtio;

/**
 * The device status field (virtio 1.2 section 2.1): the bits the driver sets
 * as it initialises the device, plus DEVICE_NEEDS_RESET which the device sets
 * (QEMU's {@code VIRTIO_CONFIG_S_*}).
 */
public final class VirtioStatus {
    private VirtioStatus() {
    }

    public static final int ACKNOWLEDGE = 1;
    public static final int DRIVER = 2;
    public static final int DRIVER_OK = 4;
    public static final int FEATURES_OK = 8;
    public static final int DEVICE_NEEDS_RESET = 64;
    public static final int FAILED = 128;

    /** A readable rendering, e.g. {@code 0x0f(ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK)}. */
    public static String describe(int status) {
        StringBuilder sb = new StringBuilder(String.format("0x%02x(", status));
        String[] names = {"ACKNOWLEDGE", "DRIVER", "DRIVER_OK", "FEATURES_OK", "bit4", "bit5", "DEVICE_NEEDS_RESET",
            "FAILED"};
        boolean first = true;
        for (int bit = 0; bit < 8; bit++) {
            if ((status & (1 << bit)) != 0) {
                sb.append(first ? "" : "|").append(names[bit]);
                first = false;
            }
        }
        return sb.append(')').toString();
    }
}
