package io.vblk.block.rbd;

import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;

/**
 * The librados calls a connection needs ({@code librados.so.2}, Debian's
 * {@code librados2}), bound by JNA direct mapping. Handles ({@code rados_t},
 * {@code rados_ioctx_t}) travel as {@code long}s; out-parameters are the
 * address of 8 bytes of native memory. Only the control path (connect,
 * close) calls these, in the main loop.
 */
final class LibRados {
    static final String SONAME = "librados.so.2";

    static {
        Native.register(LibRados.class, NativeLibrary.getInstance(SONAME));
    }

    private LibRados() {
    }

    static native int rados_create(long clusterOut, String id);

    static native int rados_conf_read_file(long cluster, String path);

    static native int rados_conf_set(long cluster, String option, String value);

    static native int rados_conf_get(long cluster, String option, byte[] buf, long len);

    static native int rados_connect(long cluster);

    static native int rados_ioctx_create(long cluster, String poolName, long ioctxOut);

    static native void rados_ioctx_set_namespace(long ioctx, String namespace);

    static native void rados_ioctx_destroy(long ioctx);

    static native void rados_shutdown(long cluster);
}
