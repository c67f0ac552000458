package io.vblk.firmware;

/** The firmware's verdict, written to {@link Platform#DEBUG_EXIT_PORT} when it stops. */
public enum BootVerdict {
    /** A valid MBR (0x55AA) was read. */
    MBR_OK(0x10),
    /** The MBR was read but carries no boot signature. */
    NO_BOOT_SIGNATURE(0x11),
    /** No virtio-blk device was found, or its initialisation failed. */
    NO_BOOT_DEVICE(0x12),
    /** The device reported an error for the read. */
    READ_ERROR(0x13),
    /** The MBR read did not complete before the firmware's timeout. */
    HANG_AT_MBR_READ(0x14);

    private final int code;

    BootVerdict(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    public static BootVerdict ofCode(int code) {
        for (BootVerdict v : values()) {
            if (v.code == code) {
                return v;
            }
        }
        throw new IllegalArgumentException("unknown firmware exit code 0x" + Integer.toHexString(code));
    }
}
