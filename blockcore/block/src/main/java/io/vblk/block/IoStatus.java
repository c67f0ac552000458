package io.vblk.block;

/** A backend's I/O status after a stopping error: QEMU's {@code BlockDeviceIoStatus}. */
public enum IoStatus {
    OK,
    FAILED,
    NOSPACE
}
