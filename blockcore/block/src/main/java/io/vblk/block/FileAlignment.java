package io.vblk.block;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;

/**
 * What O_DIRECT requires of requests on one host file: QEMU's
 * {@code raw_probe_alignment}. The offset alignment is the logical block size
 * ({@code BLKSSZGET} on a block device; {@code statx(STATX_DIOALIGN)} on a
 * file, Linux 6.1+; else probed with O_DIRECT reads of growing size); the
 * memory alignment is what statx reports, else the offset alignment.
 */
final class FileAlignment {
    /** QEMU's fallback when nothing can be learnt: safe on every device. */
    static final int DEFAULT = 4096;

    final int offset;
    final int memory;
    final boolean blockDevice;

    private FileAlignment(int offset, int memory, boolean blockDevice) {
        this.offset = offset;
        this.memory = memory;
        this.blockDevice = blockDevice;
    }

    /** Whether {@code fd} is a block device (statx's file type). */
    static boolean isBlockDevice(int fd) {
        Memory st = new Memory(FileIo.STATX_SIZE);
        st.clear();
        if (FileIo.statx(fd, "", FileIo.AT_EMPTY_PATH, FileIo.STATX_TYPE, st) < 0) {
            return false;
        }
        return (st.getShort(FileIo.STX_MODE) & FileIo.S_IFMT) == FileIo.S_IFBLK;
    }

    /**
     * The logical block size of block device {@code fd} ({@code BLKSSZGET}),
     * or -1 when the ioctl fails. The kernel refuses O_DIRECT transfers,
     * {@code BLKDISCARD} and {@code fallocate} not aligned to it, with or
     * without O_DIRECT for the last two.
     */
    static int logicalBlockSize(int fd) {
        Memory size = new Memory(4);
        if (FileIo.ioctl(fd, FileIo.BLKSSZGET, size) == 0 && size.getInt(0) > 0) {
            return size.getInt(0);
        }
        return -1;
    }

    /** Probes the alignments of {@code fd} (opened with O_DIRECT). */
    static FileAlignment probe(int fd) {
        boolean blk = isBlockDevice(fd);
        Memory st = new Memory(FileIo.STATX_SIZE);
        st.clear();
        int off = 0;
        int mem = 0;
        if (FileIo.statx(fd, "", FileIo.AT_EMPTY_PATH, FileIo.STATX_DIOALIGN, st) == 0
                && (st.getInt(FileIo.STX_MASK) & FileIo.STATX_DIOALIGN) != 0) {
            off = st.getInt(FileIo.STX_DIO_OFFSET_ALIGN);
            mem = st.getInt(FileIo.STX_DIO_MEM_ALIGN);
        }
        if (blk) {
            int lbs = logicalBlockSize(fd);
            if (lbs > 0) {
                off = lbs;
            }
        }
        if (off <= 0) {
            off = probeRead(fd);
        }
        if (mem <= 0) {
            mem = off;
        }
        return new FileAlignment(off, Math.max(mem, 1), blk);
    }

    /** The smallest power of two from 512 an O_DIRECT read at offset 0 accepts (QEMU's probing). */
    private static int probeRead(int fd) {
        Memory buf = new Memory(2L * DEFAULT);
        long a = (Pointer.nativeValue(buf) + DEFAULT - 1) & -(long) DEFAULT;
        Memory iov = new Memory(16);
        for (int align = 512; align <= DEFAULT; align <<= 1) {
            iov.setLong(0, a);
            iov.setLong(8, align);
            if (FileIo.preadv(fd, iov, 1, 0) >= 0) {
                return align;
            }
        }
        return DEFAULT;
    }

    @Override
    public String toString() {
        return "offset " + offset + ", memory " + memory + (blockDevice ? ", block device" : "");
    }
}
