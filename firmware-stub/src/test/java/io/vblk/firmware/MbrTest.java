package io.vblk.firmware;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.Test;

class MbrTest {

    static byte[] mbr(int type, long start, long count, boolean active, boolean signed) {
        byte[] s = new byte[512];
        int o = Mbr.TABLE_OFFSET;
        s[o] = (byte) (active ? 0x80 : 0);
        s[o + 4] = (byte) type;
        for (int i = 0; i < 4; i++) {
            s[o + 8 + i] = (byte) (start >>> (8 * i));
            s[o + 12 + i] = (byte) (count >>> (8 * i));
        }
        if (signed) {
            s[510] = 0x55;
            s[511] = (byte) 0xaa;
        }
        return s;
    }

    @Test
    void decodesTheSignatureAndPartitionEntries() {
        Mbr m = new Mbr(mbr(0x83, 2048, 0xfffff000L, true, true));
        assertTrue(m.bootable());
        List<Mbr.Partition> parts = m.partitions();
        assertEquals(1, parts.size());
        assertEquals("partition 1: type 0x83 active start 2048 sectors 4294963200", parts.get(0).toString());
    }

    @Test
    void aMissingSignatureIsNotBootable() {
        Mbr m = new Mbr(mbr(0x0c, 63, 100, false, false));
        assertFalse(m.bootable());
        assertEquals(0, m.signature());
        assertEquals("partition 1: type 0x0c start 63 sectors 100", m.partitions().get(0).toString());
    }
}
