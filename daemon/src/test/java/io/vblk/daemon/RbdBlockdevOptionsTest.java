package io.vblk.daemon;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.MainLoop;
import io.vblk.block.BlockLayer;
import io.vblk.block.rbd.RbdOptions;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.Map;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@code --blockdev driver=rbd} and {@code blockdev-add} with qsd's
 * {@code BlockdevOptionsRbd} members: mapped onto {@link RbdOptions} one to
 * one, unknown or unsupported members refused before any cluster is
 * contacted. (Opening on a real cluster: DaemonRbdTest in the tests module.)
 */
class RbdBlockdevOptionsTest {
    private MainLoop loop;
    private BlockLayer layer;

    @BeforeEach
    void setUp() {
        loop = new MainLoop();
        layer = new BlockLayer(loop);
    }

    @AfterEach
    void tearDown() {
        layer.close();
        loop.close();
    }

    private BlockdevFactory.Spec parse(String arg) {
        return BlockdevFactory.parse(OptionSyntax.parse(arg, "driver"), layer, null);
    }

    @Test
    void everyKeyMapsOntoRbdOptions() {
        BlockdevFactory.Spec s = parse("driver=rbd,node-name=r0,pool=p,image=i,namespace=ns,snapshot=s1,"
                + "conf=/etc/ceph/x.conf,user=u,read-only=on,cache.direct=on");
        assertEquals(new RbdOptions("p", "i", "ns", "s1", "/etc/ceph/x.conf", "u", true, true, Map.of()), s.rbd());
        assertEquals("r0", s.nodeName());
        assertTrue(s.readOnly());
        BlockdevFactory.Spec d = parse("driver=rbd,node-name=r1,pool=p,image=i");
        assertEquals(RbdOptions.of("p", "i"), d.rbd());
    }

    @Test
    void jsonFormIsTheSame() throws Exception {
        ObjectNode o = (ObjectNode) new ObjectMapper().readTree("{\"driver\": \"rbd\", \"node-name\": \"r0\", "
                + "\"pool\": \"p\", \"image\": \"i\", \"user\": \"u\", \"cache\": {\"direct\": true}}");
        BlockdevFactory.Spec s = BlockdevFactory.parse(QapiArgs.json(o), layer, null);
        assertEquals(new RbdOptions("p", "i", null, null, null, "u", false, true, Map.of()), s.rbd());
    }

    @Test
    void unknownMissingAndUnsupportedMembersAreRefused() {
        assertEquals("Parameter 'bogus' is unexpected",
                assertThrows(QmpError.class, () -> parse("driver=rbd,node-name=r,pool=p,image=i,bogus=1")).desc());
        assertEquals("Parameter 'image' is missing",
                assertThrows(QmpError.class, () -> parse("driver=rbd,node-name=r,pool=p")).desc());
        String e = assertThrows(QmpError.class,
                () -> parse("driver=rbd,node-name=r,pool=p,image=i,key-secret=sec0")).desc();
        assertTrue(e.contains("'key-secret' is not supported"), e);
        // cache.direct stays refused for the drivers that cannot honour it
        e = assertThrows(QmpError.class, () -> parse("driver=null-co,node-name=n,cache.direct=on")).desc();
        assertEquals("cache.direct=on is not supported by vblk on a null-co node", e);
        assertNull(parse("driver=null-co,node-name=n").rbd());
    }

    @Test
    void aWritableSnapshotIsRefusedBeforeTheClusterIsContacted() {
        BlockdevFactory.Spec s = parse("driver=rbd,node-name=r,pool=p,image=i,snapshot=s1,conf=/nonexistent");
        String e = assertThrows(QmpError.class, () -> BlockdevFactory.openRemote(s)).desc();
        assertTrue(e.contains("rbd snapshots are always read-only"), e);
    }

    /**
     * {@code vblk serve --image rbd:…:key=value} builds a blockdev from the
     * filename: its librados settings travel in {@code x-rados-conf} and reach
     * the node's options (they were dropped, so a short
     * {@code rados_osd_op_timeout} on the command line never applied).
     */
    @Test
    void theFilenamesLibradosSettingsSurviveTheBlockdev() {
        ObjectNode o = LegacyFilenames.rbd("rbd:p/i:conf=/c.conf:rados_osd_op_timeout=10:rbd_cache=false:x=a\\:b");
        assertEquals("rados_osd_op_timeout=10:rbd_cache=false:x=a\\:b", o.path("x-rados-conf").asText());
        o.put("node-name", "r0");
        BlockdevFactory.Spec s = BlockdevFactory.parse(QapiArgs.json(o), layer, null);
        assertEquals(Map.of("rados_osd_op_timeout", "10", "rbd_cache", "false", "x", "a:b"), s.rbd().radosConf());
        assertEquals("/c.conf", s.rbd().conf());
        assertNull(LegacyFilenames.rbd("rbd:p/i:conf=/c.conf").get("x-rados-conf"), "none: no member");
        assertEquals(Map.of("rados_osd_op_timeout", "5"),
                parse("driver=rbd,node-name=r,pool=p,image=i,x-rados-conf=rados_osd_op_timeout=5").rbd().radosConf());
    }
}
