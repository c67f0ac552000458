package io.vblk.guest;

import io.vblk.block.ErrorPolicy;

import java.nio.file.Path;
import java.util.List;

/**
 * One virtio-blk disk of a machine: its image (or a null device), format,
 * queues and the IOThreads serving them — QEMU's {@code -blockdev} plus
 * {@code -device virtio-blk-pci,iothread=...,num-queues=...}. No IOThreads
 * means the queues are served by the main loop (dataplane off).
 */
public record DiskSpec(Path image, String format, boolean readOnly, long nullSize, long nullLatencyNs,
                       int queues, int queueSize, List<String> iothreads, ErrorPolicy readPolicy,
                       ErrorPolicy writePolicy, String serial, boolean errorInjection) {
    public DiskSpec {
        if (image == null && nullSize <= 0) {
            throw new IllegalArgumentException("a disk needs an image or a null-device size");
        }
        if (queues < 1) {
            throw new IllegalArgumentException("a disk needs at least one queue, got " + queues);
        }
        iothreads = List.copyOf(iothreads);
    }

    public static DiskSpec image(Path image, String format) {
        return new DiskSpec(image, format, false, 0, 0, 1, 256, List.of(), ErrorPolicy.REPORT, ErrorPolicy.REPORT,
                null, false);
    }

    public static DiskSpec nullDevice(long size) {
        return new DiskSpec(null, null, false, size, 0, 1, 256, List.of(), ErrorPolicy.REPORT, ErrorPolicy.REPORT,
                null, false);
    }

    public DiskSpec withIothreads(List<String> names) {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, queues, queueSize, names, readPolicy,
                writePolicy, serial, errorInjection);
    }

    public DiskSpec withQueues(int n) {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, n, queueSize, iothreads, readPolicy,
                writePolicy, serial, errorInjection);
    }

    public DiskSpec withQueueSize(int n) {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, queues, n, iothreads, readPolicy,
                writePolicy, serial, errorInjection);
    }

    public DiskSpec withReadOnly(boolean ro) {
        return new DiskSpec(image, format, ro, nullSize, nullLatencyNs, queues, queueSize, iothreads, readPolicy,
                writePolicy, serial, errorInjection);
    }

    public DiskSpec withNullLatency(long ns) {
        return new DiskSpec(image, format, readOnly, nullSize, ns, queues, queueSize, iothreads, readPolicy,
                writePolicy, serial, errorInjection);
    }

    public DiskSpec withErrorPolicy(ErrorPolicy read, ErrorPolicy write) {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, queues, queueSize, iothreads, read,
                write, serial, errorInjection);
    }

    /** Puts a blkdebug node (error injection, request suspension) between the device and the image. */
    public DiskSpec withErrorInjection() {
        return new DiskSpec(image, format, readOnly, nullSize, nullLatencyNs, queues, queueSize, iothreads, readPolicy,
                writePolicy, serial, true);
    }

    public boolean dataplane() {
        return !iothreads.isEmpty();
    }
}
