package io.vblk.qmp;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;

/** The wire protocol: negotiation, request shape, id echo, argument checking, error classes. */
class QmpDispatcherTest {
    private final ObjectMapper json = new ObjectMapper();
    private final QmpCommands commands = new QmpCommands();
    private final AtomicInteger ran = new AtomicInteger();
    private final QmpDispatcher d;
    private final QmpDispatcher.Session s = new QmpDispatcher.Session();

    QmpDispatcherTest() {
        ObjectNode v = JsonNodeFactory.instance.objectNode();
        v.putObject("qemu").put("major", 7).put("minor", 2).put("micro", 0);
        v.put("package", "test");
        d = new QmpDispatcher(commands, v);
        commands.register("add", a -> {
            long x = a.integer("x");
            long y = a.optInt("y", 0);
            a.end();
            ran.incrementAndGet();
            return JsonNodeFactory.instance.numberNode(x + y);
        });
    }

    private JsonNode call(String req) throws Exception {
        return d.dispatch(json.readTree(req), s);
    }

    private static String desc(JsonNode r) {
        return r.path("error").path("desc").asText();
    }

    @Test
    void commandsBeforeNegotiationAreRefusedAndNegotiationHappensOnce() throws Exception {
        JsonNode r = call("{\"execute\":\"add\",\"arguments\":{\"x\":1}}");
        assertEquals("CommandNotFound", r.path("error").path("class").asText());
        assertEquals("Expecting capabilities negotiation with 'qmp_capabilities'", desc(r));
        assertEquals(0, ran.get());
        assertEquals("{\"return\":{},\"id\":7}", json.writeValueAsString(call("{\"execute\":\"qmp_capabilities\",\"id\":7}")));
        assertTrue(s.negotiated());
        assertEquals("Capabilities negotiation is already complete, command ignored",
                desc(call("{\"execute\":\"qmp_capabilities\"}")));
    }

    @Test
    void oobCannotBeEnabled() throws Exception {
        assertEquals("Capability 'oob' not available",
                desc(call("{\"execute\":\"qmp_capabilities\",\"arguments\":{\"enable\":[\"oob\"]}}")));
        assertFalse(s.negotiated());
        assertEquals(0, d.greeting().path("QMP").path("capabilities").size());
    }

    @Test
    void resultsAndErrorsEchoTheId() throws Exception {
        call("{\"execute\":\"qmp_capabilities\"}");
        JsonNode r = call("{\"execute\":\"add\",\"arguments\":{\"x\":40,\"y\":2},\"id\":{\"k\":[1]}}");
        assertEquals(42, r.path("return").asInt());
        assertEquals("{\"k\":[1]}", json.writeValueAsString(r.get("id")));
        JsonNode e = call("{\"execute\":\"nope\",\"id\":\"x\"}");
        assertEquals("CommandNotFound", e.path("error").path("class").asText());
        assertEquals("The command nope has not been found", desc(e));
        assertEquals("x", e.path("id").asText());
    }

    @Test
    void badRequestsAndBadArgumentsGetQemusErrorsAndRunNothing() throws Exception {
        call("{\"execute\":\"qmp_capabilities\"}");
        assertEquals("QMP input must be a JSON object", desc(call("[1,2]")));
        assertEquals("QMP input lacks member 'execute'", desc(call("{\"arguments\":{}}")));
        assertEquals("QMP input member 'execute' must be a string", desc(call("{\"execute\":3}")));
        assertEquals("QMP input member 'foo' is unexpected", desc(call("{\"execute\":\"add\",\"foo\":1}")));
        assertEquals("QMP input member 'arguments' must be an object",
                desc(call("{\"execute\":\"add\",\"arguments\":[]}")));
        assertEquals("Parameter 'x' is missing", desc(call("{\"execute\":\"add\"}")));
        assertEquals("Invalid parameter type for 'x', expected: integer",
                desc(call("{\"execute\":\"add\",\"arguments\":{\"x\":\"1\"}}")));
        assertEquals("Invalid parameter type for 'x', expected: integer",
                desc(call("{\"execute\":\"add\",\"arguments\":{\"x\":1.5}}")));
        assertEquals("Parameter 'z' is unexpected", desc(call("{\"execute\":\"add\",\"arguments\":{\"x\":1,\"z\":0}}")));
        assertEquals("GenericError", call("{\"execute\":\"add\"}").path("error").path("class").asText());
        assertEquals(0, ran.get());
        assertEquals("Parameter 'a' is unexpected",
                desc(call("{\"execute\":\"query-version\",\"arguments\":{\"a\":1}}")));
    }

    @Test
    void queryCommandsListsTheTableAndQueryVersionTheVersion() throws Exception {
        call("{\"execute\":\"qmp_capabilities\"}");
        JsonNode l = call("{\"execute\":\"query-commands\"}").path("return");
        assertEquals("qmp_capabilities", l.get(0).path("name").asText());
        assertTrue(l.toString().contains("\"add\""));
        assertEquals(7, call("{\"execute\":\"query-version\"}").path("return").path("qemu").path("major").asInt());
    }

    @Test
    void eventsCarryATimestamp() {
        ObjectNode data = JsonNodeFactory.instance.objectNode().put("id", "e");
        ObjectNode ev = QmpEvent.build("BLOCK_EXPORT_DELETED", data, java.time.Instant.ofEpochSecond(5, 7_000));
        assertEquals("{\"timestamp\":{\"seconds\":5,\"microseconds\":7},\"event\":\"BLOCK_EXPORT_DELETED\","
                + "\"data\":{\"id\":\"e\"}}", ev.toString());
    }
}
