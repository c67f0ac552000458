package io.vblk.daemon;

import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * The two spellings of a qemu-storage-daemon option argument:
 * <ul>
 * <li>keyval (QEMU's util/keyval.c), used by {@code --blockdev},
 *     {@code --export}, {@code --object} and {@code --monitor}:
 *     {@code key=value,key2.sub=value}, where a dotted key builds a nested
 *     object, {@code ,,} is a literal comma inside a value, a first element
 *     without {@code =} is the value of the option's implied key
 *     ({@code iothread,id=io0} = {@code qom-type=iothread,id=io0}) and a later
 *     repetition of a key wins;</li>
 * <li>JSON, when the argument starts with {@code {}: exactly QMP's arguments.</li>
 * </ul>
 * And QemuOpts (util/qemu-option.c), {@code --chardev}'s flat syntax, whose
 * unknown keys are "Invalid parameter 'x'".
 */
public final class OptionSyntax {
    private static final Pattern KEY = Pattern.compile("[A-Za-z0-9_\\-]+(\\.[A-Za-z0-9_\\-]+)*");
    private static final Pattern FLAT_KEY = Pattern.compile("[A-Za-z0-9_.\\-]+");
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private OptionSyntax() {
    }

    /** An option argument in either form, ready for a {@link QapiArgs} visit in the matching mode. */
    public static QapiArgs parse(String arg, String impliedKey) {
        if (arg.startsWith("{")) {
            JsonNode n;
            try {
                n = JSON.readTree(arg);
            } catch (JsonProcessingException e) {
                throw QmpError.generic("JSON parse error, " + e.getOriginalMessage());
            }
            if (!n.isObject()) {
                throw QmpError.generic("JSON parse error, expecting an object");
            }
            return QapiArgs.json((ObjectNode) n);
        }
        return QapiArgs.keyval(keyval(arg, impliedKey));
    }

    /** keyval_parse: a tree of strings. */
    public static ObjectNode keyval(String arg, String impliedKey) {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        for (String[] kv : pairs(arg, impliedKey, KEY, false)) {
            put(root, kv[0], kv[1]);
        }
        return root;
    }

    /** The {@code key=value} pairs of {@code arg} in order; {@code ,,} is a comma inside a value. */
    private static java.util.List<String[]> pairs(String arg, String impliedKey, Pattern keySyntax,
            boolean bareIsOn) {
        java.util.List<String[]> out = new java.util.ArrayList<>();
        int i = 0;
        boolean first = true;
        while (i < arg.length()) {
            int eq = arg.indexOf('=', i);
            int comma = arg.indexOf(',', i);
            String key;
            if (eq < 0 || (comma >= 0 && comma < eq)) {
                if (bareIsOn && !(first && impliedKey != null)) { // QemuOpts: a bare "server" is server=on
                    String k = arg.substring(i, comma < 0 ? arg.length() : comma);
                    if (!keySyntax.matcher(k).matches()) {
                        throw QmpError.generic("Invalid parameter '" + k + "'");
                    }
                    out.add(new String[] {k, "on"});
                    i = comma < 0 ? arg.length() : comma + 1;
                    first = false;
                    continue;
                }
                if (!first || impliedKey == null) {
                    String frag = arg.substring(i, comma < 0 ? arg.length() : comma);
                    throw QmpError.generic("Expected '=' after parameter '" + frag + "'");
                }
                key = impliedKey;
            } else {
                key = arg.substring(i, eq);
                i = eq + 1;
            }
            first = false;
            if (!keySyntax.matcher(key).matches()) {
                throw QmpError.generic("Invalid parameter '" + key + "'");
            }
            StringBuilder val = new StringBuilder();
            while (i < arg.length()) {
                char c = arg.charAt(i);
                if (c == ',') {
                    if (i + 1 < arg.length() && arg.charAt(i + 1) == ',') {
                        val.append(',');
                        i += 2;
                        continue;
                    }
                    break;
                }
                val.append(c);
                i++;
            }
            i++; // the comma
            out.add(new String[] {key, val.toString()});
        }
        return out;
    }

    private static void put(ObjectNode root, String key, String value) {
        String[] parts = key.split("\\.");
        ObjectNode cur = root;
        for (int p = 0; p < parts.length - 1; p++) {
            JsonNode next = cur.get(parts[p]);
            if (next == null) {
                cur = cur.putObject(parts[p]);
            } else if (next.isObject()) {
                cur = (ObjectNode) next;
            } else {
                throw QmpError.generic("Parameter '" + join(parts, p + 1) + "' used inconsistently");
            }
        }
        String last = parts[parts.length - 1];
        JsonNode old = cur.get(last);
        if (old != null && old.isObject()) {
            throw QmpError.generic("Parameter '" + key + "' used inconsistently");
        }
        cur.put(last, value);
    }

    private static String join(String[] parts, int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            if (i > 0) {
                sb.append('.');
            }
            sb.append(parts[i]);
        }
        return sb.toString();
    }

    /** QemuOpts: flat {@code key=value} pairs, the first one possibly implied; {@code ,,} escapes a comma. */
    public static Map<String, String> qemuOpts(String arg, String impliedKey) {
        Map<String, String> out = new LinkedHashMap<>();
        for (String[] kv : pairs(arg, impliedKey, FLAT_KEY, true)) {
            out.put(kv[0], kv[1]);
        }
        return out;
    }
}
