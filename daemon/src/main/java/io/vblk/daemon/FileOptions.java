package io.vblk.daemon;

import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;

import java.nio.file.Path;

/**
 * The options of {@code driver=file} as qsd spells them (QAPI's
 * {@code BlockdevOptionsFile} plus the common {@code cache.*},
 * {@code discard}, {@code detect-zeroes}), parsed into one value and mapped
 * key by key onto the file driver's {@link io.vblk.block.FileOptions}.
 *
 * <p>Where vblk differs from qsd: without {@code aio=} the file driver uses
 * io_uring where the kernel allows it (qsd's default is {@code threads});
 * {@code aio=native} (Linux AIO) is refused, io_uring being its successor.
 */
public record FileOptions(Path filename, boolean readOnly, String aio, boolean cacheDirect, boolean cacheNoFlush,
                          String locking, String discard, String detectZeroes) {

    /** Reads the file-driver members of {@code a} (the caller has read the common ones it shares). */
    static FileOptions parse(QapiArgs a, boolean readOnly, Common c) {
        String filename = a.str("filename");
        // null: not given, the driver's default (io_uring, falling back to threads)
        String aio = a.has("aio") ? a.optEnum("aio", "threads", "threads", "native", "io_uring") : null;
        String locking = a.optEnum("locking", "auto", "auto", "on", "off");
        return new FileOptions(Path.of(filename), readOnly, aio, c.cacheDirect(), c.cacheNoFlush(), locking,
                c.discard(), c.detectZeroes());
    }

    /** The members every driver takes (BlockdevOptionsBase): cache.*, discard, detect-zeroes. */
    record Common(boolean cacheDirect, boolean cacheNoFlush, String discard, String detectZeroes, boolean discardGiven) {
        static Common parse(QapiArgs a) {
            boolean direct = false;
            boolean noFlush = false;
            QapiArgs cache = a.optObject("cache");
            if (cache != null) {
                direct = cache.optBool("direct", false);
                noFlush = cache.optBool("no-flush", false);
            }
            boolean given = a.has("discard");
            String discard = a.optEnum("discard", "ignore", "ignore", "off", "unmap", "on");
            String dz = a.optEnum("detect-zeroes", "off", "off", "on", "unmap");
            return new Common(direct, noFlush, discard, dz, given);
        }

        /**
         * On a node that is not a file: formats pass discards down to their
         * file node, which decides whether they reach the host; the cache and
         * zero-detection options act on the file node only in vblk, so they
         * are asked for there.
         */
        void checkSupportedAboveFile(String driver) {
            // a format has a file child that takes these; null-co has no host file at all
            String where = driver.equals("null-co") ? "" : ": set it on its driver=file node";
            if (cacheDirect) {
                throw QmpError.generic("cache.direct=on is not supported by vblk on a " + driver + " node" + where);
            }
            if (cacheNoFlush) {
                throw QmpError.generic("cache.no-flush=on is not supported by vblk on a " + driver + " node" + where);
            }
            if (!detectZeroes.equals("off")) {
                throw QmpError.generic("detect-zeroes=" + detectZeroes + " is not supported by vblk on a " + driver
                        + " node" + where);
            }
        }
    }

    /** Refuses what the file driver does not offer, naming it. */
    void checkSupported() {
        if ("native".equals(aio)) {
            throw QmpError.generic("aio=native (Linux AIO) is not supported by vblk: use aio=io_uring (the "
                    + "default) or aio=threads");
        }
    }

    /** The file driver's options, key by key as QEMU names them. */
    io.vblk.block.FileOptions toDriverOptions() {
        io.vblk.block.FileOptions o = io.vblk.block.FileOptions.defaults();
        if (aio != null) {
            o = o.with("aio", aio);
        }
        return o.with("cache.direct", cacheDirect ? "on" : "off")
                .with("cache.no-flush", cacheNoFlush ? "on" : "off")
                .with("discard", discard)
                .with("detect-zeroes", detectZeroes)
                .with("locking", locking)
                .with("read-only", readOnly ? "on" : "off");
    }
}
