package io.vblk.aio;

/** errno values the project names in messages and error codes (Linux x86-64 numbering). */
public final class Errno {
    public static final int EPERM = 1;
    public static final int ENOENT = 2;
    public static final int EINTR = 4;
    public static final int EIO = 5;
    public static final int EBADF = 9;
    public static final int EAGAIN = 11;
    public static final int ENOMEM = 12;
    public static final int EACCES = 13;
    public static final int EFAULT = 14;
    public static final int EBUSY = 16;
    public static final int EEXIST = 17;
    public static final int EINVAL = 22;
    public static final int EFBIG = 27;
    public static final int ENOSPC = 28;
    public static final int EROFS = 30;
    public static final int ERANGE = 34;
    public static final int ENOTSUP = 95;
    public static final int ECANCELED = 125;
    public static final int ENOMEDIUM = 123;

    private Errno() {
    }

    public static String name(int errno) {
        switch (errno) {
            case EPERM: return "EPERM";
            case ENOENT: return "ENOENT";
            case EINTR: return "EINTR";
            case EIO: return "EIO";
            case EBADF: return "EBADF";
            case EAGAIN: return "EAGAIN";
            case ENOMEM: return "ENOMEM";
            case EACCES: return "EACCES";
            case EFAULT: return "EFAULT";
            case EBUSY: return "EBUSY";
            case EEXIST: return "EEXIST";
            case EINVAL: return "EINVAL";
            case EFBIG: return "EFBIG";
            case ENOSPC: return "ENOSPC";
            case EROFS: return "EROFS";
            case ERANGE: return "ERANGE";
            case ENOTSUP: return "ENOTSUP";
            case ECANCELED: return "ECANCELED";
            case ENOMEDIUM: return "ENOMEDIUM";
            default: return "errno " + errno;
        }
    }
}
