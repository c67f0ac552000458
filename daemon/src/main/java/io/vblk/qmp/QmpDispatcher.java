package io.vblk.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.Iterator;
import java.util.Map;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Turns one parsed request into its reply: QEMU's {@code qmp_dispatch}
 * (qapi/qmp-dispatch.c) with the monitor's capability-negotiation mode
 * (monitor/qmp.c). It checks the request's shape ({@code execute},
 * {@code arguments}, {@code id}), refuses every command but
 * {@code qmp_capabilities} until the client negotiated, looks the command
 * up, runs it and wraps the result as {@code {"return": ...}} or
 * {@code {"error": {"class": ..., "desc": ...}}}, echoing {@code id}.
 * Every error text is QEMU's. Runs in the main loop.
 *
 * <p>{@code qmp_capabilities}, {@code query-version} and
 * {@code query-commands} are registered here; everything else by the
 * daemon.
 */
public final class QmpDispatcher {
    private static final Logger LOG = LoggerFactory.getLogger(QmpDispatcher.class);
    private static final JsonNodeFactory F = JsonNodeFactory.instance;

    private final QmpCommands commands;
    private final ObjectNode version;

    /** Per-connection state the dispatcher needs: QEMU's {@code mon->commands} switch. */
    public static final class Session {
        private volatile boolean negotiated;

        public boolean negotiated() {
            return negotiated;
        }
    }

    /**
     * @param version {@code query-version}'s answer:
     *        {@code {"qemu": {"major":..,"minor":..,"micro":..}, "package": ...}}
     */
    public QmpDispatcher(QmpCommands commands, ObjectNode version) {
        this.commands = commands;
        this.version = version;
        commands.register("qmp_capabilities", a -> {
            throw new IllegalStateException("qmp_capabilities is handled by the dispatcher");
        });
        commands.register("query-version", a -> {
            a.end();
            return version.deepCopy();
        });
        commands.register("query-commands", a -> {
            a.end();
            var list = F.arrayNode();
            for (String n : commands.names()) {
                list.addObject().put("name", n);
            }
            return list;
        });
    }

    public QmpCommands commands() {
        return commands;
    }

    /** The greeting a client gets on connecting. vblk offers no capabilities (no out-of-band execution). */
    public ObjectNode greeting() {
        ObjectNode g = F.objectNode();
        ObjectNode q = g.putObject("QMP");
        q.set("version", version.deepCopy());
        q.putArray("capabilities");
        return g;
    }

    /** The reply to {@code request} (never null: every request is answered). */
    public ObjectNode dispatch(JsonNode request, Session s) {
        if (!request.isObject()) {
            return error(null, QmpError.generic("QMP input must be a JSON object"));
        }
        JsonNode id = request.get("id");
        try {
            return success(id, execute((ObjectNode) request, s));
        } catch (QmpError e) {
            return error(id, e);
        } catch (RuntimeException e) {
            LOG.error("QMP: {} failed unexpectedly", request.path("execute").asText("?"), e);
            return error(id, QmpError.generic(String.valueOf(e.getMessage())));
        }
    }

    private JsonNode execute(ObjectNode req, Session s) {
        Iterator<Map.Entry<String, JsonNode>> it = req.fields();
        while (it.hasNext()) {
            String k = it.next().getKey();
            switch (k) {
                case "execute":
                case "arguments":
                case "id":
                    break;
                case "exec-oob":
                    throw QmpError.generic("QMP input member 'exec-oob' is unexpected: out-of-band execution "
                            + "was not enabled (vblk offers no 'oob' capability)");
                default:
                    throw QmpError.generic("QMP input member '" + k + "' is unexpected");
            }
        }
        JsonNode exec = req.get("execute");
        if (exec == null) {
            throw QmpError.generic("QMP input lacks member 'execute'");
        }
        if (!exec.isTextual()) {
            throw QmpError.generic("QMP input member 'execute' must be a string");
        }
        JsonNode args = req.get("arguments");
        if (args != null && !args.isObject()) {
            throw QmpError.generic("QMP input member 'arguments' must be an object");
        }
        String name = exec.asText();
        QapiArgs a = QapiArgs.json(args == null ? F.objectNode() : (ObjectNode) args);
        if (!s.negotiated) {
            if (!name.equals("qmp_capabilities")) {
                throw new QmpError(QmpError.COMMAND_NOT_FOUND,
                        "Expecting capabilities negotiation with 'qmp_capabilities'");
            }
            java.util.List<String> enable = a.optStrList("enable");
            a.end();
            if (enable != null) {
                for (String c : enable) {
                    if (!c.equals("oob")) {
                        throw QmpError.generic("Parameter 'enable' does not accept value '" + c + "'");
                    }
                    throw QmpError.generic("Capability 'oob' not available");
                }
            }
            s.negotiated = true;
            return F.objectNode();
        }
        if (name.equals("qmp_capabilities")) {
            throw new QmpError(QmpError.COMMAND_NOT_FOUND,
                    "Capabilities negotiation is already complete, command ignored");
        }
        QmpCommand cmd = commands.find(name);
        if (cmd == null) {
            throw new QmpError(QmpError.COMMAND_NOT_FOUND, "The command " + name + " has not been found");
        }
        LOG.debug("qmp_enter {} {}", name, a.node());
        JsonNode ret = cmd.handler().run(a);
        if (!a.isEnded()) {
            LOG.error("QMP command {} did not check its arguments for unexpected members", name);
        }
        LOG.debug("qmp_exit {} {}", name, ret);
        return ret == null ? F.objectNode() : ret;
    }

    private static ObjectNode success(JsonNode id, JsonNode ret) {
        ObjectNode r = F.objectNode();
        r.set("return", ret);
        if (id != null) {
            r.set("id", id);
        }
        return r;
    }

    /** An error reply; {@code id} may be null. */
    public static ObjectNode error(JsonNode id, QmpError e) {
        ObjectNode r = F.objectNode();
        if (id != null) {
            r.set("id", id);
        }
        ObjectNode err = r.putObject("error");
        err.put("class", e.errorClass());
        err.put("desc", e.desc());
        return r;
    }
}
