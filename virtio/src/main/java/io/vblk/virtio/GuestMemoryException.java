package io.vblk.virtio;

/**
 * A driver-side or test access to guest-physical memory that is not RAM.
 * Thrown only by the convenience accessors of {@link GuestMemory} that
 * drivers and tests use; device-side code translates with
 * {@link GuestMemory#translate} and treats a negative result as bad guest
 * input instead, so this never escapes a device.
 */
public final class GuestMemoryException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final long gpa;
    private final long length;

    public GuestMemoryException(long gpa, long length) {
        super(String.format("guest-physical range [0x%x, +0x%x) is not inside one RAM region", gpa, length));
        this.gpa = gpa;
        this.length = length;
    }

    public long gpa() {
        return gpa;
    }

    public long length() {
        return length;
    }
}
