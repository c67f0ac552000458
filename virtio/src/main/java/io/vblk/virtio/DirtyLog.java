package io.vblk.virtio;

/**
 * Where a device reports its writes to guest memory while a live migration
 * copies RAM: QEMU's vhost dirty log ({@code vhost_log}, VHOST_F_LOG_ALL), a
 * bitmap of guest pages the migration must copy again. A {@link VirtQueue}
 * given one ({@link VirtQueue#setDirtyLog}) reports every write it publishes
 * — data written into the chain's device-writable buffers (the status byte
 * included), used entries, {@code used->idx}, {@code used->flags} and
 * {@code avail_event} — after the write and before the {@code used->idx}
 * that makes it visible. Called from the queue's thread; must not allocate.
 */
public interface DirtyLog {
    /** Guest-physical {@code [gpa, gpa + len)} was written. */
    void logWrite(long gpa, long len);

    /** Host address {@code [hva, hva + len)} of guest RAM was written (translated to guest-physical by the log). */
    void logHostWrite(long hva, long len);
}
