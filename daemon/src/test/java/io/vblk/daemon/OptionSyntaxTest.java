package io.vblk.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;

import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;

/** qsd's option syntax: keyval, the JSON form, QemuOpts, and the visitor's checks with QEMU's words. */
class OptionSyntaxTest {
    @Test
    void keyvalNestsDottedKeysAndUnescapesCommas() {
        var o = OptionSyntax.keyval("vhost-user-blk,id=e,addr.type=unix,addr.path=/a,,b,writable=on", "type");
        assertEquals("vhost-user-blk", o.get("type").asText());
        assertEquals("unix", o.get("addr").get("type").asText());
        assertEquals("/a,b", o.get("addr").get("path").asText());
        assertEquals("on", o.get("writable").asText());
    }

    @Test
    void keyvalWithoutImpliedKeyNeedsEquals() {
        QmpError e = assertThrows(QmpError.class, () -> OptionSyntax.keyval("a=1,oops", null));
        assertEquals("Expected '=' after parameter 'oops'", e.desc());
        assertEquals("Parameter 'a' used inconsistently",
                assertThrows(QmpError.class, () -> OptionSyntax.keyval("a=1,a.b=2", null)).desc());
    }

    @Test
    void keyvalValuesAreConvertedOnAccessWithQemusMessages() {
        QapiArgs a = OptionSyntax.parse("driver=null-co,size=1M,read-zeroes=on,latency-ns=0x10", "driver");
        assertEquals("null-co", a.str("driver"));
        assertEquals(1 << 20, a.optSize("size", 0));
        assertTrue(a.optBool("read-zeroes", false));
        assertEquals(16, a.optInt("latency-ns", 0));
        a.end();
        QapiArgs b = OptionSyntax.parse("read-zeroes=maybe", null);
        assertEquals("Parameter 'read-zeroes' expects 'on' or 'off'",
                assertThrows(QmpError.class, () -> b.optBool("read-zeroes", false)).desc());
        QapiArgs c = OptionSyntax.parse("size=x", null);
        assertEquals("Parameter 'size' expects integer",
                assertThrows(QmpError.class, () -> c.optInt("size", 0)).desc());
    }

    @Test
    void jsonFormChecksTypesStrictly() {
        QapiArgs a = OptionSyntax.parse("{\"driver\":\"null-co\",\"size\":\"1M\",\"cache\":{\"direct\":false}}", "driver");
        assertFalse(a.isKeyval());
        assertEquals("Invalid parameter type for 'size', expected: integer",
                assertThrows(QmpError.class, () -> a.optSize("size", 0)).desc());
        assertFalse(a.object("cache").optBool("direct", true));
        QmpError e = assertThrows(QmpError.class, () -> OptionSyntax.parse("{\"driver\":", null));
        assertTrue(e.desc().startsWith("JSON parse error, "), e.desc());
    }

    @Test
    void unreadMembersAreUnexpectedWithTheirFullPath() {
        QapiArgs a = OptionSyntax.parse("type=x,addr.type=unix,addr.path=/p,addr.bogus=1", "type");
        a.str("type");
        QapiArgs addr = a.object("addr");
        addr.str("type");
        addr.str("path");
        assertEquals("Parameter 'addr.bogus' is unexpected", assertThrows(QmpError.class, a::end).desc());
        QapiArgs m = OptionSyntax.parse("x=1", null);
        assertEquals("Parameter 'id' is missing", assertThrows(QmpError.class, () -> m.str("id")).desc());
        assertEquals("Parameter 'qom-type' does not accept value 'foo'", assertThrows(QmpError.class,
                () -> OptionSyntax.parse("foo,id=x", "qom-type").enumValue("qom-type", "iothread")).desc());
    }

    @Test
    void qemuOptsIsFlatAndTakesBareFlags() {
        Map<String, String> m = OptionSyntax.qemuOpts("socket,id=c,path=/q.sock,server,wait=off", "backend");
        assertEquals(Map.of("backend", "socket", "id", "c", "path", "/q.sock", "server", "on", "wait", "off"), m);
    }

    @Test
    void commandLineSplitsOptionsInOrder() {
        DaemonCommandLine cl = DaemonCommandLine.parse(List.of("--object", "iothread,id=a", "--blockdev=driver=file",
                "-V", "--daemonize"));
        assertEquals(List.of("--object", "--blockdev", "--version", "--daemonize"),
                cl.options().stream().map(DaemonCommandLine.Opt::name).toList());
        assertEquals("driver=file", cl.options().get(1).arg());
        assertEquals("unrecognized option '--bogus'",
                assertThrows(QmpError.class, () -> DaemonCommandLine.parse(List.of("--bogus"))).desc());
        assertEquals("option '--export' requires an argument",
                assertThrows(QmpError.class, () -> DaemonCommandLine.parse(List.of("--export"))).desc());
    }
}
