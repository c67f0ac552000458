package io.vblk.bench;

import io.vblk.aio.AioContext;
import io.vblk.block.FileOptions;
import io.vblk.guest.IoPattern;

import java.nio.file.Path;
import java.util.Locale;

/**
 * One configuration of {@code vblk bench}: what fio's job file and QEMU's
 * command line would say together. Immutable; {@link #with(String, String)}
 * gives the configuration a sweep point describes. {@link #validate()} names
 * the first problem in one line.
 */
public record BenchConfig(int iothreads, int queues, int queueDepth, int blockSize, IoPattern pattern,
                          Backend backend, Path image, String format, long sizeBytes, long runtimeNs, long rampNs,
                          boolean dataplane, boolean guestPoll, long pollMaxNs, boolean verify, long seed,
                          long nullLatencyNs, boolean stopStart, FileOptions fileOptions) {

    /** Where the data lives. */
    public enum Backend {
        NULL, FILE, QCOW2;

        public static Backend parse(String s) {
            switch (s) {
                case "null":
                    return NULL;
                case "file":
                case "raw":
                    return FILE;
                case "qcow2":
                    return QCOW2;
                default:
                    throw new IllegalArgumentException("--backend must be null, file or qcow2, not '" + s + "'");
            }
        }

        @Override
        public String toString() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** Largest queue depth: the ring needs three descriptors per request and holds at most 32768. */
    public static final int MAX_QUEUE_DEPTH = 4096;
    public static final int MAX_BLOCK_SIZE = 4 << 20;

    /** The defaults of {@code vblk bench} with no options. */
    public static BenchConfig defaults() {
        return new BenchConfig(1, 1, 32, 4096, IoPattern.parse("randread"), Backend.NULL, null, null, 1L << 30,
                10_000_000_000L, 2_000_000_000L, true, false, AioContext.DEFAULT_POLL_MAX_NS, false, 1, 0, false,
                FileOptions.defaults());
    }

    /** Null if the configuration can run, else a one-line reason. */
    public String validate() {
        if (iothreads < 0 || iothreads > 64) {
            return "--iothreads must be 0..64, not " + iothreads;
        }
        if (dataplane && iothreads == 0) {
            return "--dataplane on needs at least one IOThread (--iothreads N, N >= 1)";
        }
        if (queues < 1 || queues > 64) {
            return "--queues must be 1..64, not " + queues;
        }
        if (queueDepth < 1 || queueDepth > MAX_QUEUE_DEPTH) {
            return "--qd must be 1.." + MAX_QUEUE_DEPTH + ", not " + queueDepth;
        }
        if (blockSize < 512 || blockSize % 512 != 0 || blockSize > MAX_BLOCK_SIZE) {
            return "--bs must be a multiple of 512 between 512 and 4m, not " + blockSize;
        }
        if (runtimeNs <= 0) {
            return "--runtime must be positive";
        }
        if (rampNs < 0) {
            return "--ramp must not be negative";
        }
        if (pollMaxNs < 0) {
            return "--poll-max-ns must be >= 0, not " + pollMaxNs;
        }
        if (nullLatencyNs < 0) {
            return "--null-latency must not be negative";
        }
        if (nullLatencyNs > 0 && backend != Backend.NULL) {
            return "--null-latency applies only to --backend null";
        }
        if (verify && backend == Backend.NULL) {
            return "--verify needs a backend that keeps what is written: the null backend discards writes "
                    + "(use --backend file or qcow2)";
        }
        if (image != null && backend == Backend.NULL) {
            return "--image needs --backend file or qcow2 (the null backend has no image)";
        }
        if (format != null && image == null) {
            return "--format applies only to an --image";
        }
        if (image == null && (sizeBytes < 1L << 20 || sizeBytes % 512 != 0)) {
            return "--size must be a multiple of 512 and at least 1m, not " + sizeBytes;
        }
        if (stopStart && !dataplane) {
            return "--stop-start needs the dataplane (--dataplane on)";
        }
        long perQueue = image == null ? sizeBytes / queues : 0;
        if (image == null && perQueue / blockSize < queueDepth) {
            return "--size " + Units.bytes(sizeBytes) + " is too small for " + queues + " queue(s) x --qd "
                    + queueDepth + " requests of --bs " + Units.bytes(blockSize);
        }
        return null;
    }

    /** The ring size the device offers and the driver picks: room for three descriptors per request. */
    public int queueSize() {
        int need = Math.max(256, 3 * queueDepth);
        return Integer.highestOneBit(need - 1) << 1;
    }

    /** The vCPUs of the machine: one per queue, as blk-mq maps one hardware queue per CPU. */
    public int vcpus() {
        return queues;
    }

    /** The configuration with sweep parameter {@code key} set to {@code value} (as its option would be). */
    public BenchConfig with(String key, String value) {
        switch (key) {
            case "iothreads":
                return withIothreads(Units.parseInt("iothreads", value));
            case "queues":
                return new BenchConfig(iothreads, Units.parseInt("queues", value), queueDepth, blockSize, pattern,
                        backend, image, format, sizeBytes, runtimeNs, rampNs, dataplane, guestPoll, pollMaxNs, verify,
                        seed, nullLatencyNs, stopStart, fileOptions);
            case "qd":
                return new BenchConfig(iothreads, queues, Units.parseInt("qd", value), blockSize, pattern, backend,
                        image, format, sizeBytes, runtimeNs, rampNs, dataplane, guestPoll, pollMaxNs, verify, seed,
                        nullLatencyNs, stopStart, fileOptions);
            case "bs":
                return new BenchConfig(iothreads, queues, queueDepth, (int) Math.min(Integer.MAX_VALUE,
                        Units.parseBytes("bs", value)), pattern, backend, image, format, sizeBytes, runtimeNs, rampNs,
                        dataplane, guestPoll, pollMaxNs, verify, seed, nullLatencyNs, stopStart, fileOptions);
            case "rw":
                return new BenchConfig(iothreads, queues, queueDepth, blockSize, IoPattern.parse(value), backend,
                        image, format, sizeBytes, runtimeNs, rampNs, dataplane, guestPoll, pollMaxNs, verify, seed,
                        nullLatencyNs, stopStart, fileOptions);
            case "backend":
                return new BenchConfig(iothreads, queues, queueDepth, blockSize, pattern, Backend.parse(value), image,
                        format, sizeBytes, runtimeNs, rampNs, dataplane, guestPoll, pollMaxNs, verify, seed,
                        nullLatencyNs, stopStart, fileOptions);
            case "dataplane":
                return withDataplane(Units.parseOnOff("dataplane", value));
            case "guest-poll":
                return new BenchConfig(iothreads, queues, queueDepth, blockSize, pattern, backend, image, format,
                        sizeBytes, runtimeNs, rampNs, dataplane, Units.parseOnOff("guest-poll", value), pollMaxNs,
                        verify, seed, nullLatencyNs, stopStart, fileOptions);
            case "poll-max-ns":
                return new BenchConfig(iothreads, queues, queueDepth, blockSize, pattern, backend, image, format,
                        sizeBytes, runtimeNs, rampNs, dataplane, guestPoll, Units.parseLong("poll-max-ns", value),
                        verify, seed, nullLatencyNs, stopStart, fileOptions);
            case "aio":
                return withFileOptions(fileOptions.with("aio", value));
            case "cache-direct":
                return withFileOptions(fileOptions.with("cache.direct", value));
            default:
                throw new IllegalArgumentException("--sweep cannot vary '" + key + "' (it can vary " + SWEEP_KEYS
                        + ")");
        }
    }

    /** What {@code --sweep} may vary. */
    public static final java.util.List<String> SWEEP_PARAMETERS = java.util.List.of("iothreads", "queues", "qd", "bs",
            "rw", "backend", "dataplane", "guest-poll", "poll-max-ns", "aio", "cache-direct");
    public static final String SWEEP_KEYS = String.join(", ", SWEEP_PARAMETERS);

    public BenchConfig withIothreads(int n) {
        return new BenchConfig(n, queues, queueDepth, blockSize, pattern, backend, image, format, sizeBytes,
                runtimeNs, rampNs, dataplane, guestPoll, pollMaxNs, verify, seed, nullLatencyNs, stopStart, fileOptions);
    }

    /** How the image file is opened (file and qcow2 backends): aio engine, O_DIRECT, discard... */
    public BenchConfig withFileOptions(FileOptions o) {
        return new BenchConfig(iothreads, queues, queueDepth, blockSize, pattern, backend, image, format, sizeBytes,
                runtimeNs, rampNs, dataplane, guestPoll, pollMaxNs, verify, seed, nullLatencyNs, stopStart, o);
    }

    public BenchConfig withDataplane(boolean on) {
        return new BenchConfig(iothreads, queues, queueDepth, blockSize, pattern, backend, image, format, sizeBytes,
                runtimeNs, rampNs, on, guestPoll, pollMaxNs, verify, seed, nullLatencyNs, stopStart, fileOptions);
    }

    /** The value of a sweep parameter in this configuration, spelled as its option takes it. */
    public String value(String key) {
        switch (key) {
            case "iothreads":
                return Integer.toString(iothreads);
            case "queues":
                return Integer.toString(queues);
            case "qd":
                return Integer.toString(queueDepth);
            case "bs":
                return Units.bytes(blockSize);
            case "rw":
                return pattern.toString();
            case "backend":
                return backend.toString();
            case "dataplane":
                return dataplane ? "on" : "off";
            case "guest-poll":
                return guestPoll ? "on" : "off";
            case "poll-max-ns":
                return Long.toString(pollMaxNs);
            case "aio":
                return fileOptions.toQemu().get("aio");
            case "cache-direct":
                return fileOptions.direct() ? "on" : "off";
            default:
                throw new IllegalArgumentException("unknown parameter " + key);
        }
    }

    /** A one-line description, fio-style. */
    public String describe() {
        StringBuilder sb = new StringBuilder();
        sb.append(pattern).append(" bs=").append(Units.bytes(blockSize)).append(" qd=").append(queueDepth)
                .append(" queues=").append(queues).append(" backend=").append(backend);
        if (image != null) {
            sb.append(" image=").append(image);
        } else if (backend != Backend.NULL || sizeBytes != 1L << 30) {
            sb.append(" size=").append(Units.bytes(sizeBytes));
        }
        if (backend != Backend.NULL) {
            sb.append(" aio=").append(fileOptions.toQemu().get("aio"))
                    .append(" cache.direct=").append(fileOptions.direct() ? "on" : "off");
        }
        if (nullLatencyNs > 0) {
            sb.append(" null-latency=").append(nullLatencyNs).append("ns");
        }
        sb.append(" dataplane=").append(dataplane ? "on iothreads=" + iothreads : "off");
        sb.append(" poll-max-ns=").append(pollMaxNs).append(" guest-poll=").append(guestPoll ? "on" : "off");
        if (verify) {
            sb.append(" verify");
        }
        if (stopStart) {
            sb.append(" stop-start");
        }
        return sb.toString();
    }
}
