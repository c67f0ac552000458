package io.vblk.cli;

import io.vblk.block.FileOptions;

import picocli.CommandLine.Option;

/**
 * The {@code file} driver's options on the command line of {@code vblk serve}
 * and {@code vblk bench}, spelled close to QEMU's {@code -blockdev
 * driver=file,aio=...,cache.direct=...}: {@code --aio threads|io_uring},
 * {@code --cache-direct}, {@code --cache-no-flush}, {@code --discard},
 * {@code --detect-zeroes}, {@code --locking}. {@link #options()} folds them
 * into a {@link FileOptions} (read-only is the command's own option).
 */
final class FileOptionsMixin {
    @Option(names = "--aio", paramLabel = "threads|io_uring", defaultValue = "io_uring",
            description = "Host I/O engine of image files: one io_uring per IOThread, or the thread pool "
                    + "(default ${DEFAULT-VALUE}; falls back to threads where the kernel refuses io_uring).")
    String aio;

    @Option(names = "--cache-direct", description = "Open image files with O_DIRECT (QEMU's cache.direct=on): "
            + "bypass the host page cache.")
    boolean direct;

    @Option(names = "--cache-no-flush", description = "Ignore flushes (QEMU's cache.no-flush=on; unsafe).")
    boolean noFlush;

    @Option(names = "--discard", paramLabel = "ignore|unmap", defaultValue = "ignore",
            description = "Pass guest discards to the host file as holes (default ${DEFAULT-VALUE}).")
    String discard;

    @Option(names = "--detect-zeroes", paramLabel = "off|on|unmap", defaultValue = "off",
            description = "Turn all-zero writes into write-zeroes (default ${DEFAULT-VALUE}).")
    String detectZeroes;

    @Option(names = "--locking", paramLabel = "auto|on|off", defaultValue = "auto",
            description = "OFD image locking as QEMU takes it (default ${DEFAULT-VALUE}).")
    String locking;

    /** The options; an invalid value is an {@link IllegalArgumentException} naming the option. */
    FileOptions options() {
        return FileOptions.defaults().with("aio", aio).withDirect(direct).withNoFlush(noFlush)
                .with("discard", discard).with("detect-zeroes", detectZeroes).with("locking", locking);
    }
}
