package io.vblk.block.rbd;

/**
 * How librbd's completions reach a node's home context; both hand the
 * finished request over without a lock on the hot path and without a Java
 * allocation in the driver.
 *
 * <ul>
 * <li>{@link #CALLBACK}: librbd calls a JNA callback on its finisher thread,
 *     which queues the request and schedules a bottom half in the home
 *     context, as QEMU's {@code qemu_rbd_completion_cb} →
 *     {@code aio_bh_schedule_oneshot}. JNA's callback dispatch itself
 *     allocates (argument boxing) on librbd's thread.</li>
 * <li>{@link #EVENTFD}: librbd queues completions on the image and writes an
 *     eventfd ({@code rbd_set_image_notification}); the home context watches
 *     that fd and takes them with {@code rbd_poll_io_events}, as fio's rbd
 *     engine does in its poll mode and QEMU's rbd driver did before 6.1. No
 *     callback, no foreign thread entering the JVM.</li>
 * </ul>
 *
 * The default is the one measured faster (bench/RESULTS.md, "Ceph RBD");
 * {@code -Dvblk.rbd.completion=callback|eventfd} chooses.
 */
public enum RbdCompletionMode {
    CALLBACK, EVENTFD;

    static RbdCompletionMode configured() {
        String v = System.getProperty("vblk.rbd.completion", "eventfd");
        try {
            return valueOf(v.toUpperCase(java.util.Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("-Dvblk.rbd.completion must be callback or eventfd, not '" + v + "'");
        }
    }
}
