package io.vblk.job;

import io.vblk.block.ErrorPolicy;

/**
 * Options every job takes: QEMU's {@code speed}, {@code auto-finalize},
 * {@code auto-dismiss}, plus the copy granularity (QEMU's {@code buf-size}
 * per step). {@code speed} is in bytes per second, 0 meaning unlimited.
 * {@code onSourceError}/{@code onTargetError} are QEMU's
 * {@code on-source-error}/{@code on-target-error} (a mirror's read and write
 * side); stream and commit take one {@code on-error}, given as both.
 * {@code bufSize} is QEMU's mirror {@code buf-size}: the bytes of copy
 * buffers a mirror's operations may hold at once, in slots of its
 * granularity (0: one chunk, so a step's operations never wait for a slot).
 */
public record JobOptions(long speed, boolean autoFinalize, boolean autoDismiss, int chunkBytes,
                         ErrorPolicy onSourceError, ErrorPolicy onTargetError, int bufSize) {
    public static final int DEFAULT_CHUNK = 1 << 20;

    public JobOptions {
        if (speed < 0) {
            throw new JobException("speed must be >= 0 bytes/s, got " + speed);
        }
        if (chunkBytes < 65536 || Integer.bitCount(chunkBytes) != 1) {
            throw new JobException("chunk size must be a power of two of at least 64 KiB, got " + chunkBytes);
        }
        if (onSourceError == null || onTargetError == null) {
            throw new JobException("an error policy is required");
        }
        if (bufSize != 0 && (bufSize < 65536 || bufSize % 65536 != 0)) {
            throw new JobException("buf-size must be a multiple of 64 KiB, got " + bufSize);
        }
    }

    public JobOptions(long speed, boolean autoFinalize, boolean autoDismiss, int chunkBytes,
                      ErrorPolicy onSourceError, ErrorPolicy onTargetError) {
        this(speed, autoFinalize, autoDismiss, chunkBytes, onSourceError, onTargetError, 0);
    }

    public JobOptions(long speed, boolean autoFinalize, boolean autoDismiss, int chunkBytes) {
        this(speed, autoFinalize, autoDismiss, chunkBytes, ErrorPolicy.REPORT, ErrorPolicy.REPORT);
    }

    /** Unlimited speed, finalized and dismissed automatically, 1 MiB steps. */
    public static JobOptions defaults() {
        return new JobOptions(0, true, true, DEFAULT_CHUNK);
    }

    public JobOptions withSpeed(long bytesPerSecond) {
        return new JobOptions(bytesPerSecond, autoFinalize, autoDismiss, chunkBytes, onSourceError, onTargetError, bufSize);
    }

    public JobOptions withAutoFinalize(boolean b) {
        return new JobOptions(speed, b, autoDismiss, chunkBytes, onSourceError, onTargetError, bufSize);
    }

    public JobOptions withAutoDismiss(boolean b) {
        return new JobOptions(speed, autoFinalize, b, chunkBytes, onSourceError, onTargetError, bufSize);
    }

    /** QEMU's {@code on-source-error} and {@code on-target-error} (stream and commit: {@code on-error} twice). */
    public JobOptions withErrorPolicy(ErrorPolicy onSource, ErrorPolicy onTarget) {
        return new JobOptions(speed, autoFinalize, autoDismiss, chunkBytes, onSource, onTarget, bufSize);
    }

    public JobOptions withChunk(int bytes) {
        return new JobOptions(speed, autoFinalize, autoDismiss, bytes, onSourceError, onTargetError, bufSize);
    }

    /** QEMU's mirror {@code buf-size} (0: one chunk). */
    public JobOptions withBufSize(int bytes) {
        return new JobOptions(speed, autoFinalize, autoDismiss, chunkBytes, onSourceError, onTargetError, bytes);
    }
}
