package io.vblk.vhost;

import com.sun.jna.Pointer;

import io.vblk.virtio.DirtyLog;
import io.vblk.virtio.RamRegion;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The dirty log of a live migration (VHOST_USER_PROTOCOL_F_LOG_SHMFD,
 * SET_LOG_BASE): the front-end's shared bitmap with one bit per 4 KiB guest
 * page, bit {@code page % 8} of byte {@code page / 8}, which the back-end sets
 * for every page it writes while VHOST_F_LOG_ALL is negotiated. libvhost-user's
 * {@code vu_log_page}/{@code vu_log_write}; QEMU's {@code vhost_log}.
 *
 * <p>Bits are set with an atomic OR (the front-end clears them concurrently
 * as it syncs: {@code vhost_log_sync}'s atomic exchange), 64 bits at a time
 * through a {@link VarHandle} over the mapping — no allocation. Host
 * addresses are turned into guest-physical ones through the memory table
 * the rings run with ({@link #setRegions}, changed only while they are
 * stopped). Writes past the end of the bitmap are dropped and counted: the
 * front-end sized it for its RAM, so such a write is its mistake.
 */
final class VhostUserLog implements DirtyLog, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserLog.class);
    static final int PAGE_SHIFT = 12;
    /** {@code VhostUserLog}: u64 mmap_size, u64 mmap_offset. */
    static final int MSG_SIZE = 16;
    private static final VarHandle WORDS = MethodHandles.byteBufferViewVarHandle(long[].class,
            ByteOrder.LITTLE_ENDIAN);

    private final RamRegion map;
    private final ByteBuffer bitmap;
    private final long bytes;
    private volatile RamRegion[] regions = new RamRegion[0];
    /** A statistic (racy increments from IOThreads are fine). */
    private long outside;

    private VhostUserLog(RamRegion map, long bytes) {
        this.map = map;
        this.bytes = bytes;
        this.bitmap = new Pointer(map.hostAddress()).getByteBuffer(0, bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** SET_LOG_BASE: maps the front-end's log file once it is known to cover the bitmap; the fd is closed. */
    static VhostUserLog map(int fd, long size, long offset) {
        try {
            if (size <= 0 || size > Integer.MAX_VALUE || (size & 7) != 0) {
                throw new Refusal("dirty log of " + size + " bytes (a positive multiple of 8 up to 2 GiB)");
            }
            if ((offset & 4095) != 0) {
                throw new Refusal(String.format("dirty log mmap_offset 0x%x is not page-aligned", offset));
            }
            PeerFd.requireMappable(fd, offset, size, "dirty log");
            return new VhostUserLog(RamRegion.mapShared(0, size, fd, offset), size);
        } finally {
            SocketCalls.close(fd);
        }
    }

    /** The memory table the rings run with (rings stopped). */
    void setRegions(List<RamRegion> rs) {
        regions = rs.toArray(new RamRegion[0]);
    }

    @Override
    public void logWrite(long gpa, long len) {
        if (len <= 0) {
            return;
        }
        long first = gpa >>> PAGE_SHIFT;
        long last = (gpa + len - 1) >>> PAGE_SHIFT;
        for (long page = first; page <= last; page++) {
            setBit(page);
        }
    }

    @Override
    public void logHostWrite(long hva, long len) {
        for (RamRegion r : regions) {
            long off = hva - r.hostAddress();
            if (off >= 0 && off < r.size()) {
                logWrite(r.gpa() + off, len);
                return;
            }
        }
        outside++;
    }

    private void setBit(long page) {
        long byteIndex = page >>> 3;
        if (byteIndex >= bytes) {
            outside++;
            return;
        }
        int word = (int) (byteIndex & ~7L);
        long bit = 1L << (((byteIndex & 7) << 3) + (page & 7));
        long unused = (long) WORDS.getAndBitwiseOr(bitmap, word, bit); // exact call-site type: no adaptation
    }

    /** Whether page {@code page}'s bit is set (tests, diagnostics). */
    boolean isDirty(long page) {
        long byteIndex = page >>> 3;
        return byteIndex < bytes && (bitmap.get((int) byteIndex) & (1 << (page & 7))) != 0;
    }

    long size() {
        return bytes;
    }

    /** Writes that fell outside the bitmap or the memory table (the front-end sized the log too small). */
    long outside() {
        return outside;
    }

    @Override
    public void close() {
        if (outside > 0) {
            LOG.warn("vhost-user dirty log: {} write(s) fell outside the {}-byte bitmap or the memory table", outside,
                    bytes);
        }
        map.close();
    }

    @Override
    public String toString() {
        return "dirty log of " + bytes + " bytes";
    }
}
