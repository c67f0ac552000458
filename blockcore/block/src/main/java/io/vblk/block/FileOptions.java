package io.vblk.block;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * How the {@code file} protocol driver opens and drives a host file: the
 * options of QEMU's file-posix ({@code -blockdev driver=file,...}) together
 * with the generic block options that act on it ({@code discard},
 * {@code detect-zeroes}, {@code read-only}). Immutable; change one option
 * with a {@code with...} method.
 *
 * <p>QEMU spelling → this type (what {@link #parse(String)} and
 * {@link #with(String, String)} accept, so a {@code --blockdev} argument maps
 * key by key):
 * <pre>
 *   aio=threads|io_uring              {@link #aio()}            default io_uring (falls back to threads
 *                                                             when io_uring_setup fails with ENOSYS/EPERM)
 *   cache.direct=on|off               {@link #direct()}         default off (O_DIRECT when on)
 *   cache.no-flush=on|off             {@link #noFlush()}        default off (flushes complete at once)
 *   discard=ignore|unmap (off|on)     {@link #discard()}        default ignore
 *   detect-zeroes=off|on|unmap        {@link #detectZeroes()}   default off
 *   locking=auto|on|off               {@link #locking()}        default auto (= on: OFD locks exist on Linux)
 *   read-only=on|off                  {@link #readOnly()}       default off
 * </pre>
 * {@code driver=file} and {@code filename=...} are not options of this type
 * (the caller names the file); {@link #with} rejects any other key with a
 * message listing the known ones.
 */
public final class FileOptions {
    /** QEMU's {@code aio=}: who performs the host I/O. */
    public enum Aio {
        /** preadv/pwritev on the machine's thread pool (QEMU's {@code aio=threads}). */
        THREADS,
        /** One io_uring per AioContext (QEMU's {@code aio=io_uring}, block/io_uring.c). */
        IO_URING
    }

    /** QEMU's {@code discard=}: whether guest discards reach the host file. */
    public enum Discard { IGNORE, UNMAP }

    /** QEMU's {@code detect-zeroes=}: all-zero writes become write-zeroes (with unmap if {@code UNMAP}). */
    public enum DetectZeroes { OFF, ON, UNMAP }

    /** QEMU's {@code locking=}: OFD byte-range locks as raw-posix takes them. */
    public enum Locking { AUTO, ON, OFF }

    private static final FileOptions DEFAULTS = new FileOptions(Aio.IO_URING, false, false, Discard.IGNORE,
            DetectZeroes.OFF, Locking.AUTO, false);

    private final Aio aio;
    private final boolean direct;
    private final boolean noFlush;
    private final Discard discard;
    private final DetectZeroes detectZeroes;
    private final Locking locking;
    private final boolean readOnly;

    private FileOptions(Aio aio, boolean direct, boolean noFlush, Discard discard, DetectZeroes detectZeroes,
            Locking locking, boolean readOnly) {
        this.aio = Objects.requireNonNull(aio);
        this.direct = direct;
        this.noFlush = noFlush;
        this.discard = Objects.requireNonNull(discard);
        this.detectZeroes = Objects.requireNonNull(detectZeroes);
        this.locking = Objects.requireNonNull(locking);
        this.readOnly = readOnly;
    }

    /** io_uring (where the kernel allows), page cache, flushes honoured, discards ignored, locking on. */
    public static FileOptions defaults() {
        return DEFAULTS;
    }

    /** Parses a QEMU-style list, e.g. {@code "aio=io_uring,cache.direct=on,discard=unmap"}, over the defaults. */
    public static FileOptions parse(String list) {
        FileOptions o = DEFAULTS;
        if (list == null || list.isBlank()) {
            return o;
        }
        for (String kv : list.split(",")) {
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("file option '" + kv + "' is not key=value");
            }
            o = o.with(kv.substring(0, eq).trim(), kv.substring(eq + 1).trim());
        }
        return o;
    }

    /** One QEMU option by its QEMU name; an unknown key or value is an {@link IllegalArgumentException}. */
    public FileOptions with(String key, String value) {
        switch (key) {
            case "aio":
                return withAio(parseEnum(Aio.class, key, value));
            case "cache.direct":
                return withDirect(parseBool(key, value));
            case "cache.no-flush":
                return withNoFlush(parseBool(key, value));
            case "discard":
                if (value.equals("on")) {
                    return withDiscard(Discard.UNMAP);
                }
                if (value.equals("off")) {
                    return withDiscard(Discard.IGNORE);
                }
                return withDiscard(parseEnum(Discard.class, key, value));
            case "detect-zeroes":
                return withDetectZeroes(parseEnum(DetectZeroes.class, key, value));
            case "locking":
                return withLocking(parseEnum(Locking.class, key, value));
            case "read-only":
                return withReadOnly(parseBool(key, value));
            default:
                throw new IllegalArgumentException("unknown file option '" + key + "' (known: aio, cache.direct, "
                        + "cache.no-flush, discard, detect-zeroes, locking, read-only)");
        }
    }

    private static <E extends Enum<E>> E parseEnum(Class<E> type, String key, String value) {
        for (E e : type.getEnumConstants()) {
            if (e.name().toLowerCase(Locale.ROOT).equals(value)) {
                return e;
            }
        }
        StringBuilder sb = new StringBuilder();
        for (E e : type.getEnumConstants()) {
            sb.append(sb.length() == 0 ? "" : ", ").append(e.name().toLowerCase(Locale.ROOT));
        }
        throw new IllegalArgumentException("invalid value '" + value + "' for file option '" + key + "' (expected "
                + sb + ")");
    }

    private static boolean parseBool(String key, String value) {
        switch (value) {
            case "on":
            case "true":
                return true;
            case "off":
            case "false":
                return false;
            default:
                throw new IllegalArgumentException("invalid value '" + value + "' for file option '" + key
                        + "' (expected on or off)");
        }
    }

    public Aio aio() {
        return aio;
    }

    public boolean direct() {
        return direct;
    }

    public boolean noFlush() {
        return noFlush;
    }

    public Discard discard() {
        return discard;
    }

    public DetectZeroes detectZeroes() {
        return detectZeroes;
    }

    public Locking locking() {
        return locking;
    }

    public boolean readOnly() {
        return readOnly;
    }

    public FileOptions withAio(Aio v) {
        return new FileOptions(v, direct, noFlush, discard, detectZeroes, locking, readOnly);
    }

    public FileOptions withDirect(boolean v) {
        return new FileOptions(aio, v, noFlush, discard, detectZeroes, locking, readOnly);
    }

    public FileOptions withNoFlush(boolean v) {
        return new FileOptions(aio, direct, v, discard, detectZeroes, locking, readOnly);
    }

    public FileOptions withDiscard(Discard v) {
        return new FileOptions(aio, direct, noFlush, v, detectZeroes, locking, readOnly);
    }

    public FileOptions withDetectZeroes(DetectZeroes v) {
        return new FileOptions(aio, direct, noFlush, discard, v, locking, readOnly);
    }

    public FileOptions withLocking(Locking v) {
        return new FileOptions(aio, direct, noFlush, discard, detectZeroes, v, readOnly);
    }

    public FileOptions withReadOnly(boolean v) {
        return v == readOnly ? this : new FileOptions(aio, direct, noFlush, discard, detectZeroes, locking, v);
    }

    /** The options in QEMU's spelling, in a stable order (for logs and {@code describe}). */
    public Map<String, String> toQemu() {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("aio", aio.name().toLowerCase(Locale.ROOT));
        m.put("cache.direct", direct ? "on" : "off");
        m.put("cache.no-flush", noFlush ? "on" : "off");
        m.put("discard", discard.name().toLowerCase(Locale.ROOT));
        m.put("detect-zeroes", detectZeroes.name().toLowerCase(Locale.ROOT));
        m.put("locking", locking.name().toLowerCase(Locale.ROOT));
        m.put("read-only", readOnly ? "on" : "off");
        return m;
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof FileOptions)) {
            return false;
        }
        FileOptions f = (FileOptions) o;
        return aio == f.aio && direct == f.direct && noFlush == f.noFlush && discard == f.discard
                && detectZeroes == f.detectZeroes && locking == f.locking && readOnly == f.readOnly;
    }

    @Override
    public int hashCode() {
        return Objects.hash(aio, direct, noFlush, discard, detectZeroes, locking, readOnly);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        toQemu().forEach((k, v) -> sb.append(sb.length() == 0 ? "" : ",").append(k).append('=').append(v));
        return sb.toString();
    }
}
