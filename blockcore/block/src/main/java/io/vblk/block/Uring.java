package io.vblk.block;

import com.sun.jna.Native;
import com.sun.jna.Platform;
import com.sun.jna.Pointer;

/**
 * The io_uring ABI (include/uapi/linux/io_uring.h, x86-64): the three
 * syscalls through libc's {@code syscall}, {@code mmap} for the rings, and the
 * offsets of the structures vblk writes and reads in the mapped memory. JNA
 * direct mapping ({@link Native#register}): the syscalls are on the submission
 * path, one per event-loop iteration.
 */
final class Uring {
    static {
        Native.register(Platform.C_LIBRARY_NAME);
    }

    private Uring() {
    }

    static final long SYS_IO_URING_SETUP = 425;
    static final long SYS_IO_URING_ENTER = 426;
    static final long SYS_IO_URING_REGISTER = 427;

    // setup flags
    static final int IORING_SETUP_SUBMIT_ALL = 1 << 7;

    // features
    static final int IORING_FEAT_SINGLE_MMAP = 1;
    static final int IORING_FEAT_NODROP = 1 << 1;

    // enter flags
    static final int IORING_ENTER_GETEVENTS = 1;

    // register opcodes
    static final int IORING_REGISTER_FILES = 2;
    static final int IORING_REGISTER_EVENTFD = 4;
    static final int IORING_REGISTER_FILES_UPDATE = 6;
    static final int IORING_REGISTER_PROBE = 8;

    // mmap offsets
    static final long IORING_OFF_SQ_RING = 0L;
    static final long IORING_OFF_CQ_RING = 0x8000000L;
    static final long IORING_OFF_SQES = 0x10000000L;

    // opcodes
    static final int IORING_OP_NOP = 0;
    static final int IORING_OP_READV = 1;
    static final int IORING_OP_WRITEV = 2;
    static final int IORING_OP_FSYNC = 3;
    static final int IORING_OP_FALLOCATE = 17;
    static final int IORING_FSYNC_DATASYNC = 1;
    static final int IOSQE_FIXED_FILE = 1;
    /** IO_URING_OP_SUPPORTED in {@code struct io_uring_probe_op.flags}. */
    static final int IO_URING_OP_SUPPORTED = 1;

    /** {@code struct io_uring_params}: 120 bytes. */
    static final int PARAMS_SIZE = 120;
    static final int P_SQ_ENTRIES = 0;
    static final int P_CQ_ENTRIES = 4;
    static final int P_FLAGS = 8;
    static final int P_FEATURES = 20;
    static final int P_SQ_OFF = 40;
    static final int P_CQ_OFF = 80;
    // io_sqring_offsets, relative to P_SQ_OFF
    static final int SQ_HEAD = 0;
    static final int SQ_TAIL = 4;
    static final int SQ_RING_MASK = 8;
    static final int SQ_RING_ENTRIES = 12;
    static final int SQ_FLAGS = 16;
    static final int SQ_ARRAY = 24;
    // io_cqring_offsets, relative to P_CQ_OFF
    static final int CQ_HEAD = 0;
    static final int CQ_TAIL = 4;
    static final int CQ_RING_MASK = 8;
    static final int CQ_RING_ENTRIES = 12;
    static final int CQ_OVERFLOW = 16;
    static final int CQ_CQES = 20;

    /** {@code struct io_uring_sqe}: 64 bytes. */
    static final int SQE_SIZE = 64;
    static final int SQE_OPCODE = 0;
    static final int SQE_FLAGS = 1;
    static final int SQE_IOPRIO = 2;
    static final int SQE_FD = 4;
    static final int SQE_OFF = 8;
    static final int SQE_ADDR = 16;
    static final int SQE_LEN = 24;
    static final int SQE_RW_FLAGS = 28;
    static final int SQE_USER_DATA = 32;

    /** {@code struct io_uring_cqe}: 16 bytes. */
    static final int CQE_SIZE = 16;
    static final int CQE_USER_DATA = 0;
    static final int CQE_RES = 8;

    static final int PROT_READ = 1;
    static final int PROT_WRITE = 2;
    static final int MAP_SHARED = 1;
    static final int MAP_POPULATE = 0x8000;

    static native long syscall(long number, int a, Pointer b);

    static native long syscall(long number, int fd, int toSubmit, int minComplete, int flags, Pointer sig, long sigsz);

    static native long syscall(long number, int fd, int opcode, Pointer arg, int nrArgs);

    static native Pointer mmap(Pointer addr, long length, int prot, int flags, int fd, long offset);

    static native int munmap(Pointer addr, long length);

    static int setup(int entries, Pointer params) {
        return (int) syscall(SYS_IO_URING_SETUP, entries, params);
    }

    static int enter(int fd, int toSubmit, int minComplete, int flags) {
        return (int) syscall(SYS_IO_URING_ENTER, fd, toSubmit, minComplete, flags, null, 0L);
    }

    static int register(int fd, int opcode, Pointer arg, int nrArgs) {
        return (int) syscall(SYS_IO_URING_REGISTER, fd, opcode, arg, nrArgs);
    }
}
