package io.vblk.job;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class DirtyBitmapTest {
    private static final int G = 65536;

    /**
     * A mirror's first pass copies allocation extents that need not end on a
     * granule: a guest write to the uncopied part of a granule the copy cuts
     * must stay marked, or the next step would wipe it and the write never
     * reach the target.
     */
    @Test
    void aCopyThatCutsAGranuleLeavesItsMarkAlone() {
        DirtyBitmap b = new DirtyBitmap(4L * G, G);
        b.set(G + 100, 512); // the guest wrote just inside granule 1
        b.clearWithin(0, G + 4096); // a copy of [0, G+4096) cuts granule 1
        assertEquals(G, b.dirtyBytes(), "granule 1 stays dirty");
        assertEquals(G, b.nextDirty(0));
        b.clearWithin(G, G); // a copy of all of granule 1
        assertEquals(0, b.dirtyBytes());
    }

    @Test
    void theGranuleCutByTheDiskEndCountsAsWhole() {
        DirtyBitmap b = new DirtyBitmap(3L * G + 4096, G);
        b.set(3L * G, 4096);
        b.clearWithin(3L * G, 4096);
        assertEquals(0, b.dirtyBytes());
    }
}
