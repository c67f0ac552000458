package io.vblk.aio;

/** A failed libc call: carries the call's name and errno. */
public final class NativeException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final String call;
    private final int errno;

    public NativeException(String call, int errno) {
        super(call + " failed: errno " + errno + " (" + Errno.name(errno) + ")");
        this.call = call;
        this.errno = errno;
    }

    public String call() {
        return call;
    }

    public int errno() {
        return errno;
    }
}
