package io.vblk.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.time.Instant;

/**
 * An asynchronous QMP event as QEMU sends it ({@code qmp_event_build_dict}):
 * {@code {"timestamp": {"seconds": S, "microseconds": US}, "event": NAME, "data": {...}}},
 * the timestamp being the wall-clock time it happened.
 */
public final class QmpEvent {
    private QmpEvent() {
    }

    public static ObjectNode build(String name, JsonNode data, Instant when) {
        ObjectNode e = JsonNodeFactory.instance.objectNode();
        ObjectNode ts = e.putObject("timestamp");
        ts.put("seconds", when.getEpochSecond());
        ts.put("microseconds", when.getNano() / 1000);
        e.put("event", name);
        if (data != null) {
            e.set("data", data);
        }
        return e;
    }

    /** Where events go: every monitor that finished capability negotiation. Callable from any thread. */
    @FunctionalInterface
    public interface Sink {
        void emit(String name, ObjectNode data);
    }
}
