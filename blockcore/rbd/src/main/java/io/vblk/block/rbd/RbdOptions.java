package io.vblk.block.rbd;

import io.vblk.block.BlockException;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Where an RBD node's image lives and how to reach it: the options of
 * qemu-storage-daemon's {@code --blockdev driver=rbd} (QAPI
 * {@code BlockdevOptionsRbd}), one field per key, so the daemon and QMP
 * {@code blockdev-add} map onto it 1:1 through {@link #fromKeyValues}:
 *
 * <pre>
 *   pool=P            pool                 (required)
 *   image=I           image                (required)
 *   namespace=NS      namespace            (default: the pool's default namespace)
 *   snapshot=S        snapshot             (opened read-only)
 *   conf=FILE         conf                 (default: librados' search, /etc/ceph/ceph.conf, ...)
 *   user=U            user                 (the cephx id without "client.", default "admin")
 *   read-only=on|off  readOnly
 *   cache.direct=on   cacheDirect          (sets rbd_cache=false, as QEMU does)
 *   x-rados-conf=K=V[:K=V...]  radosConf  (vblk's own: librados settings, as the filename form's
 *                                          key=value pairs, which QEMU's blockdev cannot carry)
 * </pre>
 *
 * {@link #parseFilename} reads qemu-img's {@code rbd:pool/[namespace/]image[@snap][:conf=FILE][:id=U][:key=value...]}
 * form; its other {@code key=value} pairs are librados settings ({@code rados_conf_set}), kept in
 * {@link #radosConf}.
 */
public record RbdOptions(String pool, String image, String namespace, String snapshot, String conf, String user,
                         boolean readOnly, boolean cacheDirect, Map<String, String> radosConf) {

    /** The keys {@link #fromKeyValues} accepts (qsd's, less {@code driver} and {@code node-name}). */
    public static final Set<String> KEYS = Set.of("pool", "image", "namespace", "snapshot", "conf", "user",
            "read-only", "cache.direct", "x-rados-conf");

    public RbdOptions {
        if (pool == null || pool.isEmpty()) {
            throw new BlockException("rbd: a pool is needed (pool=NAME)");
        }
        if (image == null || image.isEmpty()) {
            throw new BlockException("rbd: an image is needed (image=NAME)");
        }
        // in the order given (Map.copyOf iterates in an order that changes from run to run): librados applies
        // them in turn, and the filename they are printed back into stays the same
        radosConf = radosConf == null ? Map.of() : java.util.Collections.unmodifiableMap(new LinkedHashMap<>(radosConf));
    }

    public static RbdOptions of(String pool, String image) {
        return new RbdOptions(pool, image, null, null, null, null, false, false, Map.of());
    }

    public RbdOptions withConf(String file) {
        return new RbdOptions(pool, image, namespace, snapshot, file, user, readOnly, cacheDirect, radosConf);
    }

    public RbdOptions withSnapshot(String snap) {
        return new RbdOptions(pool, image, namespace, snap, conf, user, readOnly, cacheDirect, radosConf);
    }

    public RbdOptions withReadOnly(boolean ro) {
        return new RbdOptions(pool, image, namespace, snapshot, conf, user, ro, cacheDirect, radosConf);
    }

    public RbdOptions withCacheDirect(boolean direct) {
        return new RbdOptions(pool, image, namespace, snapshot, conf, user, readOnly, direct, radosConf);
    }

    /** Whether the image is opened read-only: asked for, or a snapshot (snapshots cannot be written). */
    public boolean opensReadOnly() {
        return readOnly || snapshot != null;
    }

    /**
     * The options of {@code --blockdev driver=rbd,...} / {@code blockdev-add}
     * (without {@code driver} and {@code node-name}); an unknown key or a bad
     * on/off value is an error naming it.
     */
    public static RbdOptions fromKeyValues(Map<String, String> kv) {
        for (String k : kv.keySet()) {
            if (!KEYS.contains(k)) {
                throw new BlockException("rbd: unknown option '" + k + "' (known: pool, image, namespace, snapshot, "
                        + "conf, user, read-only, cache.direct, x-rados-conf)");
            }
        }
        return new RbdOptions(kv.get("pool"), kv.get("image"), kv.get("namespace"), kv.get("snapshot"),
                kv.get("conf"), kv.get("user"), onOff(kv, "read-only"), onOff(kv, "cache.direct"),
                parseRadosConf(kv.get("x-rados-conf")));
    }

    /**
     * {@code key=value[:key=value...]} (a backslash escapes ':'), the
     * filename form's librados settings as one option value, so that
     * {@code vblk serve --image rbd:…:rados_osd_op_timeout=10}, which builds
     * a blockdev, keeps them.
     */
    private static Map<String, String> parseRadosConf(String s) {
        Map<String, String> m = new LinkedHashMap<>();
        if (s == null || s.isEmpty()) {
            return m;
        }
        int[] pos = {0};
        while (true) {
            String kv = token(s, pos, ":");
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new BlockException("rbd: x-rados-conf entry '" + kv + "' is not key=value");
            }
            m.put(kv.substring(0, eq), unescape(kv.substring(eq + 1)));
            if (pos[0] >= s.length()) {
                return m;
            }
            pos[0]++; // the ':'
        }
    }

    /** The librados settings as {@code x-rados-conf}'s value (null when there are none). */
    public String radosConfOption() {
        if (radosConf.isEmpty()) {
            return null;
        }
        StringBuilder sb = new StringBuilder();
        radosConf.forEach((k, v) -> sb.append(sb.length() == 0 ? "" : ":").append(k).append('=').append(escape(v)));
        return sb.toString();
    }

    private static boolean onOff(Map<String, String> kv, String key) {
        String v = kv.get(key);
        if (v == null) {
            return false;
        }
        switch (v) {
            case "on":
            case "true":
                return true;
            case "off":
            case "false":
                return false;
            default:
                throw new BlockException("rbd: " + key + " must be on or off, not '" + v + "'");
        }
    }

    /**
     * Parses {@code rbd:pool/[namespace/]image[@snap][:key=value...]}, as QEMU's
     * {@code qemu_rbd_parse_filename}: a backslash escapes the next character
     * (a ':' or '@' inside a name); {@code conf} and {@code id} are the conf file
     * and user, every other key a librados setting.
     */
    public static RbdOptions parseFilename(String filename) {
        if (!filename.startsWith("rbd:")) {
            throw new BlockException("'" + filename + "' is not an rbd: filename");
        }
        String rest = filename.substring(4);
        int[] pos = {0};
        String path = token(rest, pos, ":");
        String pool;
        String namespace = null;
        String image;
        String snap = null;
        int at = unescapedIndex(path, '@');
        String names = at < 0 ? path : path.substring(0, at);
        if (at >= 0) {
            snap = unescape(path.substring(at + 1));
        }
        String[] parts = splitUnescaped(names, '/');
        if (parts.length == 2) {
            pool = unescape(parts[0]);
            image = unescape(parts[1]);
        } else if (parts.length == 3) {
            pool = unescape(parts[0]);
            namespace = unescape(parts[1]);
            image = unescape(parts[2]);
        } else {
            throw new BlockException("rbd filename '" + filename + "': expected rbd:pool/[namespace/]image[@snap]"
                    + "[:conf=FILE][:id=USER]");
        }
        if (snap != null && snap.isEmpty()) {
            throw new BlockException("rbd filename '" + filename + "': empty snapshot name after '@'");
        }
        String conf = null;
        String user = null;
        Map<String, String> rados = new LinkedHashMap<>();
        while (pos[0] < rest.length()) {
            pos[0]++; // the ':'
            String kv = token(rest, pos, ":");
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new BlockException("rbd filename '" + filename + "': option '" + kv + "' is not key=value");
            }
            String k = kv.substring(0, eq);
            String v = unescape(kv.substring(eq + 1));
            if (k.equals("conf")) {
                conf = v;
            } else if (k.equals("id")) {
                user = v;
            } else {
                rados.put(k, v);
            }
        }
        return new RbdOptions(pool, image, namespace, snap, conf, user, false, false, rados);
    }

    /** The filename form of these options (round-trips through {@link #parseFilename}). */
    public String toFilename() {
        StringBuilder sb = new StringBuilder("rbd:").append(escape(pool)).append('/');
        if (namespace != null && !namespace.isEmpty()) {
            sb.append(escape(namespace)).append('/');
        }
        sb.append(escape(image));
        if (snapshot != null) {
            sb.append('@').append(escape(snapshot));
        }
        if (conf != null) {
            sb.append(":conf=").append(escape(conf));
        }
        if (user != null) {
            sb.append(":id=").append(escape(user));
        }
        radosConf.forEach((k, v) -> sb.append(':').append(k).append('=').append(escape(v)));
        return sb.toString();
    }

    /** The user as librados names it ("admin" when none is given). */
    String userOrDefault() {
        return user == null || user.isEmpty() ? "admin" : user;
    }

    @Override
    public String toString() {
        return toFilename() + (readOnly ? " read-only" : "") + (cacheDirect ? " cache.direct" : "");
    }

    private static String escape(String s) {
        StringBuilder sb = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c == ':' || c == '@' || c == '/' || c == '\\') {
                sb.append('\\');
            }
            sb.append(c);
        }
        return sb.toString();
    }

    /** The text from pos up to the next unescaped delimiter (escapes kept); pos moves to the delimiter. */
    private static String token(String s, int[] pos, String delims) {
        int i = pos[0];
        StringBuilder sb = new StringBuilder();
        while (i < s.length()) {
            char c = s.charAt(i);
            if (c == '\\' && i + 1 < s.length()) {
                sb.append(c).append(s.charAt(i + 1));
                i += 2;
                continue;
            }
            if (delims.indexOf(c) >= 0) {
                break;
            }
            sb.append(c);
            i++;
        }
        pos[0] = i;
        return sb.toString();
    }

    private static int unescapedIndex(String s, char want) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\') {
                i++;
            } else if (c == want) {
                return i;
            }
        }
        return -1;
    }

    private static String[] splitUnescaped(String s, char delim) {
        java.util.List<String> out = new java.util.ArrayList<>();
        int[] pos = {0};
        for (;;) {
            out.add(token(s, pos, String.valueOf(delim)));
            if (pos[0] >= s.length()) {
                break;
            }
            pos[0]++;
        }
        return out.toArray(new String[0]);
    }

    private static String unescape(String s) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\' && i + 1 < s.length()) {
                c = s.charAt(++i);
            }
            sb.append(c);
        }
        return sb.toString();
    }
}
