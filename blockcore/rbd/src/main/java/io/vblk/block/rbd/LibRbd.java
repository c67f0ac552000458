package io.vblk.block.rbd;

import com.sun.jna.Callback;
import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;

/**
 * The librbd calls of the RBD driver ({@code librbd.so.1}, Debian's
 * {@code librbd1}), bound by JNA direct mapping so each request costs a plain
 * JNI transition. Handles ({@code rbd_image_t}, {@code rbd_completion_t}),
 * {@code struct iovec} arrays and callback function pointers travel as
 * {@code long}s: the request path passes preallocated native memory and a
 * function pointer resolved once, so it allocates no Java object per call.
 */
final class LibRbd {
    static final String SONAME = "librbd.so.1";

    /** {@code RBD_FEATURE_FAST_DIFF}: the object map also records which objects changed, so diffs are cheap. */
    static final long RBD_FEATURE_FAST_DIFF = 1L << 4;
    /** {@code RBD_FLAG_OBJECT_MAP_INVALID} and {@code RBD_FLAG_FAST_DIFF_INVALID}: the map cannot be trusted. */
    static final long RBD_FLAG_OBJECT_MAP_INVALID = 1L << 0;
    static final long RBD_FLAG_FAST_DIFF_INVALID = 1L << 1;
    /** {@code RBD_WRITE_ZEROES_FLAG_THICK_PROVISION}: write the zeroes, keep the range allocated. */
    static final int RBD_WRITE_ZEROES_FLAG_THICK_PROVISION = 1;

    static {
        Native.register(LibRbd.class, NativeLibrary.getInstance(SONAME));
    }

    private LibRbd() {
    }

    /** {@code rbd_callback_t}: {@code void (*)(rbd_completion_t cb, void *arg)}, run on a librbd thread. */
    interface CompletionCallback extends Callback {
        void invoke(long completion, long arg);
    }

    /** The {@code rbd_diff_iterate2} callback: {@code int (*)(uint64_t off, size_t len, int exists, void *arg)}. */
    interface DiffCallback extends Callback {
        int invoke(long offset, long length, int exists, long arg);
    }

    static native int rbd_open(long ioctx, String name, long imageOut, String snapName);

    static native int rbd_open_read_only(long ioctx, String name, long imageOut, String snapName);

    static native int rbd_close(long image);

    static native int rbd_get_size(long image, long sizeOut);

    static native int rbd_resize(long image, long size);

    static native int rbd_get_features(long image, long featuresOut);

    static native int rbd_get_flags(long image, long flagsOut);

    static native int rbd_invalidate_cache(long image);

    static native int rbd_diff_iterate2(long image, String fromSnap, long offset, long length, byte includeParent,
                                        byte wholeObject, DiffCallback cb, long arg);

    /** {@code fn} is the address of a {@link CompletionCallback} (resolved once, kept reachable). */
    static native int rbd_aio_create_completion(long arg, long fn, long completionOut);

    static native long rbd_aio_get_return_value(long completion);

    static native long rbd_aio_get_arg(long completion);

    /** {@code EVENT_TYPE_EVENTFD}: librbd writes 1 to the eventfd after queueing each completion. */
    static final int EVENT_TYPE_EVENTFD = 2;

    static native int rbd_set_image_notification(long image, int fd, int type);

    /** Takes up to {@code max} finished completions (created with a null callback) into {@code comps}. */
    static native int rbd_poll_io_events(long image, long comps, int max);

    static native void rbd_aio_release(long completion);

    static native int rbd_aio_readv(long image, long iov, int iovcnt, long offset, long completion);

    static native int rbd_aio_writev(long image, long iov, int iovcnt, long offset, long completion);

    static native int rbd_aio_flush(long image, long completion);

    static native int rbd_aio_discard(long image, long offset, long length, long completion);

    static native int rbd_aio_write_zeroes(long image, long offset, long length, long completion, int zeroFlags,
                                           int opFlags);
}
