package io.vblk.daemon;

import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;

import java.nio.file.Path;

/**
 * The options of {@code driver=file} as qsd spells them (QAPI's
 * {@code BlockdevOptionsFile} plus the common {@code cache.*},
 * {@code discard}, {@code detect-zeroes}), parsed into one value. vblk's
 * file driver today opens with the thread pool, buffered, without locks and
 * passes discards through; {@link #checkSupported()} accepts exactly those
 * settings and names any other as not supported yet, so a command line that
 * asks for io_uring or O_DIRECT fails clearly instead of running without it.
 * (The io_uring/O_DIRECT/OFD-locking driver, when it lands, widens this.)
 */
public record FileOptions(Path filename, boolean readOnly, String aio, boolean cacheDirect, boolean cacheNoFlush,
                          String locking, String discard, String detectZeroes) {

    /** Reads the file-driver members of {@code a} (the caller has read the common ones it shares). */
    static FileOptions parse(QapiArgs a, boolean readOnly, Common c) {
        String filename = a.str("filename");
        String aio = a.optEnum("aio", "threads", "threads", "native", "io_uring");
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

        /** vblk's drivers flush, do not detect zeroes and pass discards through. */
        void checkSupported() {
            if (cacheDirect) {
                throw QmpError.generic("cache.direct=on is not supported yet by vblk (O_DIRECT comes with the "
                        + "io_uring file driver)");
            }
            if (cacheNoFlush) {
                throw QmpError.generic("cache.no-flush=on is not supported yet by vblk");
            }
            if (discardGiven && (discard.equals("ignore") || discard.equals("off"))) {
                throw QmpError.generic("discard=" + discard + " is not supported yet by vblk: discard requests are "
                        + "always passed through (as discard=unmap)");
            }
            if (!detectZeroes.equals("off")) {
                throw QmpError.generic("detect-zeroes=" + detectZeroes + " is not supported yet by vblk");
            }
        }
    }

    /** Refuses what the current file driver cannot do, naming it. */
    void checkSupported() {
        if (aio.equals("native")) {
            throw QmpError.generic("aio=native is not supported by vblk (use aio=threads; aio=io_uring comes with "
                    + "the io_uring file driver)");
        }
        if (aio.equals("io_uring")) {
            throw QmpError.generic("aio=io_uring is not supported yet by vblk's file driver (use aio=threads)");
        }
        if (locking.equals("on")) {
            throw QmpError.generic("locking=on is not supported yet by vblk's file driver (OFD locks come with the "
                    + "io_uring file driver; use locking=auto or locking=off)");
        }
    }
}
