package io.vblk.guest;

import io.vblk.block.ErrorPolicy;

import java.nio.file.Path;
import java.util.List;

/**
 * One virtio-blk disk of a machine: its image (or a null device), format,
 * queues and the IOThreads serving them — QEMU's {@code -blockdev} plus
 * {@code -device virtio-blk-pci,iothread=...,num-queues=...}. No IOThreads
 * means the queues are served by the main loop (dataplane off).
 *
 * <p>With {@code vhostUser} set the disk is QEMU's {@code -device
 * vhost-user-blk-pci,chardev=...}: a virtio-blk PCI function whose queues a
 * vhost-user back-end listening on that socket serves ({@code vblk serve},
 * {@code qemu-storage-daemon}); image, format, IOThreads and error policies
 * are then the back-end's business and ignored here, {@code queues} and
 * {@code queueSize} are what the front-end exposes.
 */
public record DiskSpec(Path image, String format, boolean readOnly, long nullSize, long nullLatencyNs,
                       int queues, int queueSize, List<String> iothreads, ErrorPolicy readPolicy,
                       ErrorPolicy writePolicy, String serial, boolean errorInjection, Path vhostUser) {
    public DiskSpec {
        if (image == null && nullSize <= 0 && vhostUser == null) {
            throw new IllegalArgumentException("a disk needs an image, a null-device size or a vhost-user socket");
        }
        if (queues < 1) {
            throw new IllegalArgumentException("a disk needs at least one queue, got " + queues);
        }
        iothreads = List.copyOf(iothreads);
    }

    /** A disk of the machine's own (no vhost-user socket). */
    public DiskSpec(Path image, String format, boolean readOnly, long nullSize, long nullLatencyNs, int queues,
                    int queueSize, List<String> iothreads, ErrorPolicy readPolicy, ErrorPolicy writePolicy,
                    String serial) {
        this(image, format, readOnly, nullSize, nullLatencyNs, queues, queueSize, iothreads, readPolicy, writePolicy,
                serial, false, null);
    }

    /** A vhost-user-blk disk: one queue of 256 entries, served by the back-end listening on {@code socket}. */
    public static DiskSpec vhostUser(Path socket) {
        return new DiskSpec(null, null, false, 0, 0, 1, 256, List.of(), ErrorPolicy.REPORT, ErrorPolicy.REPORT, null,
                false, socket);
    }

    public DiskSpec withVhostUser(Path socket) {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, queues, queueSize, iothreads,
                readPolicy, writePolicy, serial, errorInjection, socket);
    }

    public boolean isVhostUser() {
        return vhostUser != null;
    }

    public static DiskSpec image(Path image, String format) {
        return new DiskSpec(image, format, false, 0, 0, 1, 256, List.of(), ErrorPolicy.REPORT, ErrorPolicy.REPORT,
                null, false, null);
    }

    public static DiskSpec nullDevice(long size) {
        return new DiskSpec(null, null, false, size, 0, 1, 256, List.of(), ErrorPolicy.REPORT, ErrorPolicy.REPORT,
                null, false, null);
    }

    public DiskSpec withIothreads(List<String> names) {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, queues, queueSize, names, readPolicy,
                writePolicy, serial, errorInjection, vhostUser);
    }

    public DiskSpec withQueues(int n) {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, n, queueSize, iothreads, readPolicy,
                writePolicy, serial, errorInjection, vhostUser);
    }

    public DiskSpec withQueueSize(int n) {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, queues, n, iothreads, readPolicy,
                writePolicy, serial, errorInjection, vhostUser);
    }

    public DiskSpec withReadOnly(boolean ro) {
        return new DiskSpec(image, format, ro, nullSize, nullLatencyNs, queues, queueSize, iothreads, readPolicy,
                writePolicy, serial, errorInjection, vhostUser);
    }

    public DiskSpec withNullLatency(long ns) {
        return new DiskSpec(image, format, readOnly, nullSize, ns, queues, queueSize, iothreads, readPolicy,
                writePolicy, serial, errorInjection, vhostUser);
    }

    public DiskSpec withErrorPolicy(ErrorPolicy read, ErrorPolicy write) {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, queues, queueSize, iothreads, read,
                write, serial, errorInjection, vhostUser);
    }

    /** Puts a blkdebug node (error injection, request suspension) between the device and the image. */
    public DiskSpec withErrorInjection() {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, queues, queueSize, iothreads, readPolicy,
                writePolicy, serial, true, vhostUser);
    }

    public boolean dataplane() {
        return !iothreads.isEmpty();
    }
}
