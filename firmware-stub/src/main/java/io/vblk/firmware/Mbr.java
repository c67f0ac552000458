package io.vblk.firmware;

import java.util.ArrayList;
import java.util.List;

/** A master boot record: the 0x55AA signature and the four primary partition entries. */
final class Mbr {
    static final int SIGNATURE_OFFSET = 510;
    static final int TABLE_OFFSET = 446;

    /** One non-empty partition entry. */
    record Partition(int index, boolean active, int type, long startLba, long sectors) {
        @Override
        public String toString() {
            return String.format("partition %d: type 0x%02x%s start %d sectors %d", index, type,
                    active ? " active" : "", startLba, sectors);
        }
    }

    final byte[] sector;

    Mbr(byte[] sector) {
        if (sector.length < 512) {
            throw new IllegalArgumentException("an MBR is 512 bytes");
        }
        this.sector = sector;
    }

    int signature() {
        return (sector[SIGNATURE_OFFSET] & 0xff) | (sector[SIGNATURE_OFFSET + 1] & 0xff) << 8;
    }

    boolean bootable() {
        return signature() == 0xaa55;
    }

    List<Partition> partitions() {
        List<Partition> l = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            int o = TABLE_OFFSET + 16 * i;
            int type = sector[o + 4] & 0xff;
            long start = le32(o + 8);
            long count = le32(o + 12);
            if (type == 0 && count == 0) {
                continue;
            }
            l.add(new Partition(i + 1, (sector[o] & 0x80) != 0, type, start, count));
        }
        return l;
    }

    private long le32(int o) {
        return (sector[o] & 0xffL) | (sector[o + 1] & 0xffL) << 8 | (sector[o + 2] & 0xffL) << 16
                | (sector[o + 3] & 0xffL) << 24;
    }
}
