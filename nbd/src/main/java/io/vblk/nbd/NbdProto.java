package io.vblk.nbd;

import io.vblk.aio.Errno;

/**
 * The NBD wire protocol's numbers, once: magics, options, option replies,
 * info types, transmission flags, commands, command flags, structured
 * reply types and errors, as the NBD specification (doc/proto.md) and
 * QEMU's include/block/nbd.h name them. Everything on the wire is big-endian.
 */
public final class NbdProto {
    private NbdProto() {
    }

    // ------------------------------------------------------------------ handshake
    public static final long NBDMAGIC = 0x4e42444d41474943L;
    public static final long IHAVEOPT = 0x49484156454F5054L;
    public static final long OPT_REPLY_MAGIC = 0x0003e889045565a9L;

    public static final int FLAG_FIXED_NEWSTYLE = 1;
    public static final int FLAG_NO_ZEROES = 1 << 1;
    public static final int FLAG_C_FIXED_NEWSTYLE = 1;
    public static final int FLAG_C_NO_ZEROES = 1 << 1;

    public static final int OPT_EXPORT_NAME = 1;
    public static final int OPT_ABORT = 2;
    public static final int OPT_LIST = 3;
    public static final int OPT_STARTTLS = 5;
    public static final int OPT_INFO = 6;
    public static final int OPT_GO = 7;
    public static final int OPT_STRUCTURED_REPLY = 8;
    public static final int OPT_LIST_META_CONTEXT = 9;
    public static final int OPT_SET_META_CONTEXT = 10;

    public static final int REP_ACK = 1;
    public static final int REP_SERVER = 2;
    public static final int REP_INFO = 3;
    public static final int REP_META_CONTEXT = 4;
    public static final int REP_ERR_UNSUP = 0x80000001;
    public static final int REP_ERR_POLICY = 0x80000002;
    public static final int REP_ERR_INVALID = 0x80000003;
    public static final int REP_ERR_PLATFORM = 0x80000004;
    public static final int REP_ERR_TLS_REQD = 0x80000005;
    public static final int REP_ERR_UNKNOWN = 0x80000006;
    public static final int REP_ERR_SHUTDOWN = 0x80000007;
    public static final int REP_ERR_BLOCK_SIZE_REQD = 0x80000008;
    public static final int REP_ERR_TOO_BIG = 0x80000009;

    public static final int INFO_EXPORT = 0;
    public static final int INFO_NAME = 1;
    public static final int INFO_DESCRIPTION = 2;
    public static final int INFO_BLOCK_SIZE = 3;

    // ------------------------------------------------------------------ transmission flags
    public static final int FLAG_HAS_FLAGS = 1;
    public static final int FLAG_READ_ONLY = 1 << 1;
    public static final int FLAG_SEND_FLUSH = 1 << 2;
    public static final int FLAG_SEND_FUA = 1 << 3;
    public static final int FLAG_ROTATIONAL = 1 << 4;
    public static final int FLAG_SEND_TRIM = 1 << 5;
    public static final int FLAG_SEND_WRITE_ZEROES = 1 << 6;
    public static final int FLAG_SEND_DF = 1 << 7;
    public static final int FLAG_CAN_MULTI_CONN = 1 << 8;
    public static final int FLAG_SEND_FAST_ZERO = 1 << 11;

    // ------------------------------------------------------------------ requests and replies
    public static final int REQUEST_MAGIC = 0x25609513;
    public static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    public static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;
    public static final int REQUEST_SIZE = 28;
    public static final int SIMPLE_REPLY_SIZE = 16;
    public static final int CHUNK_HEADER_SIZE = 20;

    public static final int CMD_READ = 0;
    public static final int CMD_WRITE = 1;
    public static final int CMD_DISC = 2;
    public static final int CMD_FLUSH = 3;
    public static final int CMD_TRIM = 4;
    public static final int CMD_CACHE = 5;
    public static final int CMD_WRITE_ZEROES = 6;
    public static final int CMD_BLOCK_STATUS = 7;

    public static final int CMD_FLAG_FUA = 1;
    public static final int CMD_FLAG_NO_HOLE = 1 << 1;
    public static final int CMD_FLAG_DF = 1 << 2;
    public static final int CMD_FLAG_REQ_ONE = 1 << 3;
    public static final int CMD_FLAG_FAST_ZERO = 1 << 4;

    public static final int REPLY_FLAG_DONE = 1;
    public static final int REPLY_TYPE_NONE = 0;
    public static final int REPLY_TYPE_OFFSET_DATA = 1;
    public static final int REPLY_TYPE_OFFSET_HOLE = 2;
    public static final int REPLY_TYPE_BLOCK_STATUS = 5;
    public static final int REPLY_TYPE_ERROR = 0x8001;

    public static final int STATE_HOLE = 1;
    public static final int STATE_ZERO = 2;

    /** The one metadata context vblk serves, and its id in BLOCK_STATUS replies (QEMU's NBD_META_ID_BASE_ALLOCATION). */
    public static final String BASE_ALLOCATION = "base:allocation";
    public static final int META_ID_BASE_ALLOCATION = 0;

    // ------------------------------------------------------------------ errors (the wire values)
    public static final int EPERM = 1;
    public static final int EIO = 5;
    public static final int ENOMEM = 12;
    public static final int EINVAL = 22;
    public static final int ENOSPC = 28;
    public static final int EOVERFLOW = 75;
    public static final int ENOTSUP = 95;
    public static final int ESHUTDOWN = 108;

    /** Largest option payload accepted during the handshake (QEMU's NBD_MAX_BUFFER_SIZE bounds it too). */
    public static final int MAX_OPTION_LENGTH = 64 * 1024;
    /** Strings (names, queries) are at most 4096 bytes by the spec. */
    public static final int MAX_STRING = 4096;
    /** The largest READ/WRITE payload: QEMU's NBD_MAX_BUFFER_SIZE, advertised as the maximum block size. */
    public static final int MAX_PAYLOAD = 32 * 1024 * 1024;
    public static final int PREFERRED_BLOCK = 4096;

    /**
     * A block-layer -errno as the NBD error the spec allows on the wire:
     * QEMU's {@code system_errno_to_nbd_errno} (unknown values become EINVAL,
     * as there).
     */
    public static int errnoToNbd(int negErrno) {
        int e = -negErrno;
        switch (e) {
            case 0:
                return 0;
            case Errno.EPERM:
            case Errno.EROFS:
                return EPERM;
            case Errno.EIO:
                return EIO;
            case Errno.ENOMEM:
                return ENOMEM;
            case Errno.ENOSPC:
            case Errno.EFBIG:
            case 122: // EDQUOT
                return ENOSPC;
            case EOVERFLOW:
                return EOVERFLOW;
            case Errno.ENOTSUP:
                return ENOTSUP;
            case ESHUTDOWN:
                return ESHUTDOWN;
            default:
                return EINVAL;
        }
    }

    public static String commandName(int type) {
        switch (type) {
            case CMD_READ: return "READ";
            case CMD_WRITE: return "WRITE";
            case CMD_DISC: return "DISC";
            case CMD_FLUSH: return "FLUSH";
            case CMD_TRIM: return "TRIM";
            case CMD_CACHE: return "CACHE";
            case CMD_WRITE_ZEROES: return "WRITE_ZEROES";
            case CMD_BLOCK_STATUS: return "BLOCK_STATUS";
            default: return "command " + type;
        }
    }

    public static String optionName(int opt) {
        switch (opt) {
            case OPT_EXPORT_NAME: return "EXPORT_NAME";
            case OPT_ABORT: return "ABORT";
            case OPT_LIST: return "LIST";
            case OPT_STARTTLS: return "STARTTLS";
            case OPT_INFO: return "INFO";
            case OPT_GO: return "GO";
            case OPT_STRUCTURED_REPLY: return "STRUCTURED_REPLY";
            case OPT_LIST_META_CONTEXT: return "LIST_META_CONTEXT";
            case OPT_SET_META_CONTEXT: return "SET_META_CONTEXT";
            default: return "option " + opt;
        }
    }
}
