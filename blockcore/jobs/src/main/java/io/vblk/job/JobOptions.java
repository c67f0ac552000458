package io.vblk.job;

/**
 * Options every job takes: QEMU's {@code speed}, {@code auto-finalize},
 * {@code auto-dismiss}, plus the copy granularity (QEMU's {@code buf-size}
 * per step). {@code speed} is in bytes per second, 0 meaning unlimited.
 */
public record JobOptions(long speed, boolean autoFinalize, boolean autoDismiss, int chunkBytes) {
    public static final int DEFAULT_CHUNK = 1 << 20;

    public JobOptions {
        if (speed < 0) {
            throw new JobException("speed must be >= 0 bytes/s, got " + speed);
        }
        if (chunkBytes < 65536 || Integer.bitCount(chunkBytes) != 1) {
            throw new JobException("chunk size must be a power of two of at least 64 KiB, got " + chunkBytes);
        }
    }

    /** Unlimited speed, finalized and dismissed automatically, 1 MiB steps. */
    public static JobOptions defaults() {
        return new JobOptions(0, true, true, DEFAULT_CHUNK);
    }

    public JobOptions withSpeed(long bytesPerSecond) {
        return new JobOptions(bytesPerSecond, autoFinalize, autoDismiss, chunkBytes);
    }

    public JobOptions withAutoFinalize(boolean b) {
        return new JobOptions(speed, b, autoDismiss, chunkBytes);
    }

    public JobOptions withAutoDismiss(boolean b) {
        return new JobOptions(speed, autoFinalize, b, chunkBytes);
    }

    public JobOptions withChunk(int bytes) {
        return new JobOptions(speed, autoFinalize, autoDismiss, bytes);
    }
}
