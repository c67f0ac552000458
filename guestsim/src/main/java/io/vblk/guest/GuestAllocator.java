package io.vblk.guest;

/** A bump allocator over a range of guest RAM, for a driver's rings and buffers. */
public final class GuestAllocator {
    private final long end;
    private long next;

    public GuestAllocator(long start, long end) {
        if (start < 0 || end <= start) {
            throw new IllegalArgumentException("empty guest RAM range [" + start + ", " + end + ")");
        }
        this.next = start;
        this.end = end;
    }

    public long alloc(long size, long align) {
        long a = (next + align - 1) & -align;
        if (a + size > end) {
            throw new IllegalStateException("guest RAM exhausted: need " + size + " bytes, " + (end - a) + " left");
        }
        next = a + size;
        return a;
    }
}
