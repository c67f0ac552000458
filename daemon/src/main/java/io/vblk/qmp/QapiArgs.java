package io.vblk.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

/**
 * Typed, checked access to one QAPI struct given as a JSON object: QEMU's
 * QObject input visitor (qapi/qobject-input-visitor.c). It reads the
 * arguments of a QMP command as well as an option given on the command line
 * ({@code --blockdev driver=file,...}), which QEMU parses with keyval into
 * the same tree of strings and then visits in "keyval" mode: there a number
 * or a boolean is a string to convert ({@code size=1048576},
 * {@code read-only=on}), in JSON mode it must have the right JSON type.
 *
 * <p>Every member read is remembered; {@link #end()} refuses the ones nobody
 * read with QEMU's "Parameter 'x' is unexpected", which is how an option a
 * driver does not know is refused. Errors name members by their full dotted
 * path ({@code addr.path}) and are {@link QmpError}s with QEMU's wording.
 */
public final class QapiArgs {
    private final ObjectNode obj;
    private final String prefix;
    private final boolean keyval;
    private final Set<String> visited = new LinkedHashSet<>();
    private final Map<String, QapiArgs> children = new LinkedHashMap<>();
    private boolean ended;

    private QapiArgs(ObjectNode obj, String prefix, boolean keyval) {
        this.obj = obj;
        this.prefix = prefix;
        this.keyval = keyval;
    }

    /** Arguments as JSON (QMP, or an option given in its JSON form). */
    public static QapiArgs json(ObjectNode obj) {
        return new QapiArgs(obj, "", false);
    }

    /** An option parsed by keyval: every scalar is a string, converted on access. */
    public static QapiArgs keyval(ObjectNode obj) {
        return new QapiArgs(obj, "", true);
    }

    public boolean isKeyval() {
        return keyval;
    }

    /** The underlying object (for a command that passes it on, e.g. an inline child node). */
    public ObjectNode node() {
        return obj;
    }

    /** The full name of a member, as errors show it. */
    public String path(String key) {
        return prefix + key;
    }

    public boolean has(String key) {
        return obj.has(key);
    }

    /** Marks {@code key} as known without reading it (an option accepted and ignored). */
    public void accept(String key) {
        visited.add(key);
    }

    private JsonNode get(String key, boolean required) {
        visited.add(key);
        JsonNode v = obj.get(key);
        if (v == null && required) {
            throw QmpError.generic("Parameter '" + path(key) + "' is missing");
        }
        return v;
    }

    private QmpError wrongType(String key, String expected) {
        if (keyval) {
            return QmpError.generic("Parameter '" + path(key) + "' expects " + expected);
        }
        return QmpError.generic("Invalid parameter type for '" + path(key) + "', expected: " + expected);
    }

    public String str(String key) {
        return string(key, get(key, true));
    }

    public String optStr(String key, String dflt) {
        JsonNode v = get(key, false);
        return v == null ? dflt : string(key, v);
    }

    private String string(String key, JsonNode v) {
        if (!v.isTextual()) {
            throw wrongType(key, "string");
        }
        return v.asText();
    }

    /** One of {@code allowed}: QEMU's enum visitor ("Parameter 'x' does not accept value 'y'"). */
    public String optEnum(String key, String dflt, String... allowed) {
        String s = optStr(key, null);
        if (s == null) {
            return dflt;
        }
        for (String a : allowed) {
            if (a.equals(s)) {
                return s;
            }
        }
        throw QmpError.generic("Parameter '" + path(key) + "' does not accept value '" + s + "'");
    }

    public String enumValue(String key, String... allowed) {
        get(key, true);
        return optEnum(key, null, allowed);
    }

    public long integer(String key) {
        return integer(key, get(key, true), false);
    }

    public long optInt(String key, long dflt) {
        JsonNode v = get(key, false);
        return v == null ? dflt : integer(key, v, false);
    }

    /** A size: a non-negative integer; on the command line also with a suffix (k, M, G, T), as qemu_strtosz. */
    public long optSize(String key, long dflt) {
        JsonNode v = get(key, false);
        return v == null ? dflt : integer(key, v, true);
    }

    private long integer(String key, JsonNode v, boolean size) {
        if (keyval) {
            if (!v.isTextual()) {
                throw wrongType(key, size ? "a size value" : "integer");
            }
            Long n = size ? parseSize(v.asText()) : parseInt(v.asText());
            if (n == null) {
                throw wrongType(key, size ? "a size value" : "integer");
            }
            return n;
        }
        if (!v.isIntegralNumber() || !v.canConvertToLong() || (size && v.asLong() < 0)) {
            throw wrongType(key, "integer");
        }
        return v.asLong();
    }

    static Long parseInt(String s) {
        try {
            if (s.startsWith("0x") || s.startsWith("0X")) {
                return Long.parseLong(s.substring(2), 16);
            }
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            return null;
        }
    }

    static Long parseSize(String s) {
        if (s.isEmpty()) {
            return null;
        }
        char last = Character.toLowerCase(s.charAt(s.length() - 1));
        int shift = "bkmgtpe".indexOf(last) * 10;
        String digits = shift >= 0 ? s.substring(0, s.length() - 1) : s;
        Long n = parseInt(digits);
        if (n == null || n < 0 || (shift > 0 && n > (Long.MAX_VALUE >> shift))) {
            return null;
        }
        return shift > 0 ? n << shift : n;
    }

    public boolean bool(String key) {
        return bool(key, get(key, true));
    }

    public boolean optBool(String key, boolean dflt) {
        JsonNode v = get(key, false);
        return v == null ? dflt : bool(key, v);
    }

    private boolean bool(String key, JsonNode v) {
        if (keyval) {
            String s = v.isTextual() ? v.asText().toLowerCase(Locale.ROOT) : "";
            switch (s) {
                case "on":
                case "yes":
                case "true":
                    return true;
                case "off":
                case "no":
                case "false":
                    return false;
                default:
                    throw QmpError.generic("Parameter '" + path(key) + "' expects 'on' or 'off'");
            }
        }
        if (!v.isBoolean()) {
            throw wrongType(key, "boolean");
        }
        return v.asBoolean();
    }

    /** A raw member (QAPI {@code any}, or an alternate the caller tells apart), or null. */
    public JsonNode optRaw(String key) {
        return get(key, false);
    }

    /** A nested struct ({@code cache} of {@code cache.direct}), or null when absent. */
    public QapiArgs optObject(String key) {
        JsonNode v = get(key, false);
        if (v == null) {
            return null;
        }
        return object(key, v);
    }

    public QapiArgs object(String key) {
        return object(key, get(key, true));
    }

    private QapiArgs object(String key, JsonNode v) {
        if (!v.isObject()) {
            throw wrongType(key, "object");
        }
        QapiArgs c = children.get(key);
        if (c == null) {
            c = new QapiArgs((ObjectNode) v, path(key) + ".", keyval);
            children.put(key, c);
        }
        return c;
    }

    /** A list of strings (QAPI {@code ['str']}). */
    public List<String> optStrList(String key) {
        JsonNode v = get(key, false);
        if (v == null) {
            return null;
        }
        if (!v.isArray()) {
            throw wrongType(key, "array");
        }
        List<String> out = new ArrayList<>();
        for (JsonNode e : v) {
            if (!e.isTextual()) {
                throw wrongType(key, "string");
            }
            out.add(e.asText());
        }
        return out;
    }

    /**
     * QEMU's {@code visit_check_struct}: a member nobody read is an error.
     * Call it after reading everything and before acting, so a command with
     * an unknown argument does nothing.
     */
    public void end() {
        ended = true;
        Iterator<String> it = obj.fieldNames();
        while (it.hasNext()) {
            String k = it.next();
            if (!visited.contains(k)) {
                throw QmpError.generic("Parameter '" + path(k) + "' is unexpected");
            }
        }
        for (QapiArgs c : children.values()) {
            c.end();
        }
    }

    public boolean isEnded() {
        return ended;
    }
}
