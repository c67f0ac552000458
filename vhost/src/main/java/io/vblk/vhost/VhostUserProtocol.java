package io.vblk.vhost;

/**
 * Numbers of the vhost-user protocol (QEMU's docs/interop/vhost-user.rst;
 * hw/virtio/vhost-user.c and libvhost-user.h name them the same way):
 * request codes, header flags, protocol feature bits, payload layouts.
 * Everything on the wire is little-endian.
 */
public final class VhostUserProtocol {
    private VhostUserProtocol() {
    }

    // ------------------------------------------------------------------ header

    /** Header: u32 request, u32 flags, u32 payload size. */
    public static final int HEADER_SIZE = 12;
    public static final int VERSION = 0x1;
    public static final int VERSION_MASK = 0x3;
    public static final int FLAG_REPLY = 0x4;
    public static final int FLAG_NEED_REPLY = 0x8;
    /** The largest payload accepted (the protocol's largest, a config space of 256 bytes plus header, is 268). */
    public static final int MAX_PAYLOAD = 4096;

    // ------------------------------------------------------------------ front-end requests

    public static final int GET_FEATURES = 1;
    public static final int SET_FEATURES = 2;
    public static final int SET_OWNER = 3;
    public static final int RESET_OWNER = 4;
    public static final int SET_MEM_TABLE = 5;
    public static final int SET_LOG_BASE = 6;
    public static final int SET_LOG_FD = 7;
    public static final int SET_VRING_NUM = 8;
    public static final int SET_VRING_ADDR = 9;
    public static final int SET_VRING_BASE = 10;
    public static final int GET_VRING_BASE = 11;
    public static final int SET_VRING_KICK = 12;
    public static final int SET_VRING_CALL = 13;
    public static final int SET_VRING_ERR = 14;
    public static final int GET_PROTOCOL_FEATURES = 15;
    public static final int SET_PROTOCOL_FEATURES = 16;
    public static final int GET_QUEUE_NUM = 17;
    public static final int SET_VRING_ENABLE = 18;
    public static final int SEND_RARP = 19;
    public static final int NET_SET_MTU = 20;
    /** SET_SLAVE_REQ_FD in QEMU 7.2, SET_BACKEND_REQ_FD since. */
    public static final int SET_BACKEND_REQ_FD = 21;
    public static final int IOTLB_MSG = 22;
    public static final int SET_VRING_ENDIAN = 23;
    public static final int GET_CONFIG = 24;
    public static final int SET_CONFIG = 25;
    public static final int CREATE_CRYPTO_SESSION = 26;
    public static final int CLOSE_CRYPTO_SESSION = 27;
    public static final int POSTCOPY_ADVISE = 28;
    public static final int POSTCOPY_LISTEN = 29;
    public static final int POSTCOPY_END = 30;
    public static final int GET_INFLIGHT_FD = 31;
    public static final int SET_INFLIGHT_FD = 32;
    public static final int GPU_SET_SOCKET = 33;
    public static final int RESET_DEVICE = 34;
    public static final int VRING_KICK = 35;
    public static final int GET_MAX_MEM_SLOTS = 36;
    public static final int ADD_MEM_REG = 37;
    public static final int REM_MEM_REG = 38;
    public static final int SET_STATUS = 39;
    public static final int GET_STATUS = 40;

    private static final String[] NAMES = {"NONE", "GET_FEATURES", "SET_FEATURES", "SET_OWNER", "RESET_OWNER",
        "SET_MEM_TABLE", "SET_LOG_BASE", "SET_LOG_FD", "SET_VRING_NUM", "SET_VRING_ADDR", "SET_VRING_BASE",
        "GET_VRING_BASE", "SET_VRING_KICK", "SET_VRING_CALL", "SET_VRING_ERR", "GET_PROTOCOL_FEATURES",
        "SET_PROTOCOL_FEATURES", "GET_QUEUE_NUM", "SET_VRING_ENABLE", "SEND_RARP", "NET_SET_MTU",
        "SET_BACKEND_REQ_FD", "IOTLB_MSG", "SET_VRING_ENDIAN", "GET_CONFIG", "SET_CONFIG", "CREATE_CRYPTO_SESSION",
        "CLOSE_CRYPTO_SESSION", "POSTCOPY_ADVISE", "POSTCOPY_LISTEN", "POSTCOPY_END", "GET_INFLIGHT_FD",
        "SET_INFLIGHT_FD", "GPU_SET_SOCKET", "RESET_DEVICE", "VRING_KICK", "GET_MAX_MEM_SLOTS", "ADD_MEM_REG",
        "REM_MEM_REG", "SET_STATUS", "GET_STATUS"};

    /** The request's name, e.g. {@code GET_VRING_BASE}, or {@code request 99}. */
    public static String name(int request) {
        return request >= 0 && request < NAMES.length ? NAMES[request] : "request " + request;
    }

    /**
     * Whether the protocol defines a reply for the request whatever the flags
     * (the GET_* family and the few others that answer): a back-end must send
     * one or the front-end waits forever.
     */
    public static boolean hasReply(int request) {
        switch (request) {
            case GET_FEATURES:
            case GET_PROTOCOL_FEATURES:
            case GET_VRING_BASE:
            case GET_QUEUE_NUM:
            case GET_CONFIG:
            case GET_MAX_MEM_SLOTS:
            case GET_INFLIGHT_FD:
            case GET_STATUS:
            case SET_LOG_BASE:
            case CREATE_CRYPTO_SESSION:
            case POSTCOPY_ADVISE:
            case POSTCOPY_LISTEN:
            case POSTCOPY_END:
                return true;
            default:
                return false;
        }
    }

    // ------------------------------------------------------------------ back-end requests (on the back-end channel)

    public static final int BACKEND_IOTLB_MSG = 1;
    public static final int BACKEND_CONFIG_CHANGE_MSG = 2;

    // ------------------------------------------------------------------ feature bits

    /** Virtio feature bit 30 in GET_FEATURES: the back-end speaks protocol features. */
    public static final int F_PROTOCOL_FEATURES_BIT = 30;
    public static final long F_PROTOCOL_FEATURES = 1L << F_PROTOCOL_FEATURES_BIT;
    /** VHOST_F_LOG_ALL: dirty logging for migration (not offered). */
    public static final long F_LOG_ALL = 1L << 26;

    public static final int PF_MQ = 0;
    public static final int PF_LOG_SHMFD = 1;
    public static final int PF_RARP = 2;
    public static final int PF_REPLY_ACK = 3;
    public static final int PF_NET_MTU = 4;
    /** PROTOCOL_F_SLAVE_REQ in QEMU 7.2, BACKEND_REQ since. */
    public static final int PF_BACKEND_REQ = 5;
    public static final int PF_CROSS_ENDIAN = 6;
    public static final int PF_CRYPTO_SESSION = 7;
    public static final int PF_PAGEFAULT = 8;
    public static final int PF_CONFIG = 9;
    public static final int PF_BACKEND_SEND_FD = 10;
    public static final int PF_HOST_NOTIFIER = 11;
    public static final int PF_INFLIGHT_SHMFD = 12;
    public static final int PF_RESET_DEVICE = 13;
    public static final int PF_INBAND_NOTIFICATIONS = 14;
    public static final int PF_CONFIGURE_MEM_SLOTS = 15;
    public static final int PF_STATUS = 16;

    public static long pf(int bit) {
        return 1L << bit;
    }

    /** A readable list of protocol feature bits. */
    public static String describeProtocolFeatures(long f) {
        String[] names = {"MQ", "LOG_SHMFD", "RARP", "REPLY_ACK", "NET_MTU", "BACKEND_REQ", "CROSS_ENDIAN",
            "CRYPTO_SESSION", "PAGEFAULT", "CONFIG", "BACKEND_SEND_FD", "HOST_NOTIFIER", "INFLIGHT_SHMFD",
            "RESET_DEVICE", "INBAND_NOTIFICATIONS", "CONFIGURE_MEM_SLOTS", "STATUS"};
        StringBuilder sb = new StringBuilder(String.format("0x%x(", f));
        boolean first = true;
        for (int b = 0; b < 64; b++) {
            if ((f & (1L << b)) != 0) {
                sb.append(first ? "" : "|").append(b < names.length ? names[b] : "bit" + b);
                first = false;
            }
        }
        return sb.append(')').toString();
    }

    // ------------------------------------------------------------------ payload layouts

    /** u64 payload (features, queue number, ack, ring index with flags). */
    public static final int U64_SIZE = 8;
    /** {@code vhost_vring_state}: u32 index, u32 num. */
    public static final int STATE_SIZE = 8;
    /** {@code vhost_vring_addr}: u32 index, u32 flags, u64 desc, u64 used, u64 avail, u64 log (user addresses). */
    public static final int ADDR_SIZE = 40;
    /** One {@code VhostUserMemoryRegion}: u64 guest_phys_addr, memory_size, userspace_addr, mmap_offset. */
    public static final int REGION_SIZE = 32;
    /** SET_MEM_TABLE carries at most this many regions (VHOST_MEMORY_BASELINE_NREGIONS). */
    public static final int MAX_TABLE_REGIONS = 8;
    /** {@code VhostUserMemory} header: u32 nregions, u32 padding. */
    public static final int MEMORY_HEADER_SIZE = 8;
    /** {@code VhostUserMemRegMsg}: u64 padding, one region. */
    public static final int MEM_REG_SIZE = 8 + REGION_SIZE;
    /** {@code VhostUserConfig} header: u32 offset, u32 size, u32 flags (then the bytes). */
    public static final int CONFIG_HEADER_SIZE = 12;
    public static final int MAX_CONFIG_SIZE = 256;
    /** Bits 0..7 of a SET_VRING_KICK/CALL/ERR payload: the ring; bit 8: no descriptor is passed. */
    public static final long VRING_IDX_MASK = 0xff;
    public static final long VRING_NOFD_MASK = 1L << 8;
}
