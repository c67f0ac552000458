package io.vblk.vhost;

import com.sun.jna.Memory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Checks on a file descriptor a front-end passed (SCM_RIGHTS) before the
 * back-end uses it: what kind of file it is, how large, and that no
 * back-end thread can block on it (DESIGN rule 9: the front-end is
 * untrusted). libvhost-user trusts these descriptors; QEMU's vhost-user
 * server likewise. Each check refuses with a message naming the fault.
 *
 * <ul>
 * <li>Ring kick, call and error descriptors must be eventfds and are made
 *     non-blocking: a kick read never waits for a front-end that read its
 *     own eventfd first, a call write never waits on a saturated counter.
 *     A pipe or a socket there could block a read or fill up, so it is
 *     refused.</li>
 * <li>A memory (or log, or inflight) descriptor must be a regular file
 *     (memfd, tmpfs, hugetlbfs) at least as long as the mapping asks, checked
 *     with {@code fstat} before {@code mmap}: touching a mapped page past the
 *     end of the file raises SIGBUS, which a JVM thread does not survive
 *     cleanly.</li>
 * <li>The back-end channel must be a socket; it is written without
 *     blocking.</li>
 * </ul>
 *
 * <p>What no check can prevent: the front-end shares the open file
 * description, so it may clear O_NONBLOCK again or shrink a memfd after the
 * check; a front-end that does so on purpose races its own VM. Sealed memfds
 * (F_SEAL_SHRINK) close the second hole; QEMU does not seal guest RAM.
 */
final class PeerFd {
    private static final String EVENTFD_LINK = "anon_inode:[eventfd]";

    private PeerFd() {
    }

    /** What {@code /proc/self/fd/<fd>} names: {@code anon_inode:[eventfd]}, {@code pipe:[123]}, a path... */
    static String describe(int fd) {
        try {
            return Files.readSymbolicLink(Path.of("/proc/self/fd", Integer.toString(fd))).toString();
        } catch (IOException | UnsupportedOperationException e) {
            return "fd " + fd + " (unreadable: " + e.getMessage() + ")";
        }
    }

    /** Refuses anything but an eventfd; makes it non-blocking so no read or write of it can wait. */
    static void requireEventfd(int fd, String what) {
        String kind = describe(fd);
        if (!EVENTFD_LINK.equals(kind)) {
            throw new Refusal(what + " is " + kind + ", not an eventfd (a pipe or socket could block the back-end)");
        }
        setNonBlocking(fd, what);
    }

    static void setNonBlocking(int fd, String what) {
        int fl = SocketCalls.fcntl(fd, SocketCalls.F_GETFL, 0);
        if (fl < 0) {
            throw new Refusal(what + ": fcntl(F_GETFL) failed: errno " + SocketCalls.errno());
        }
        if ((fl & SocketCalls.O_NONBLOCK) == 0
                && SocketCalls.fcntl(fd, SocketCalls.F_SETFL, fl | SocketCalls.O_NONBLOCK) < 0) {
            throw new Refusal(what + ": cannot make it non-blocking: errno " + SocketCalls.errno());
        }
    }

    /**
     * Refuses a descriptor that is not a regular file covering
     * {@code [offset, offset + size)}: mapping past its end would SIGBUS on
     * first touch. Offsets and sizes are unsigned 64-bit on the wire.
     */
    static void requireMappable(int fd, long offset, long size, String what) {
        if (size <= 0) {
            throw new Refusal(what + ": size " + Long.toUnsignedString(size) + " (must be positive and below 2^63)");
        }
        if (offset < 0 || offset + size < 0) {
            throw new Refusal(String.format("%s: offset 0x%x + size 0x%x overflows", what, offset, size));
        }
        Memory st = new Memory(SocketCalls.STAT_SIZE);
        if (SocketCalls.fstat(fd, st) < 0) {
            throw new Refusal(what + ": fstat failed: errno " + SocketCalls.errno());
        }
        int mode = st.getInt(SocketCalls.STAT_MODE);
        if ((mode & SocketCalls.S_IFMT) != SocketCalls.S_IFREG) {
            throw new Refusal(what + " is " + describe(fd) + ", not a memory file (memfd, tmpfs or hugetlbfs)");
        }
        long fileSize = st.getLong(SocketCalls.STAT_SIZE_OFFSET);
        if (fileSize < offset + size) {
            throw new Refusal(String.format("%s: the file has 0x%x bytes, the mapping needs [0x%x, 0x%x): pages past "
                    + "its end would raise SIGBUS", what, fileSize, offset, offset + size));
        }
    }

    /** Refuses a back-end channel that is not a socket; makes it non-blocking. */
    static void requireSocket(int fd, String what) {
        Memory st = new Memory(SocketCalls.STAT_SIZE);
        if (SocketCalls.fstat(fd, st) < 0) {
            throw new Refusal(what + ": fstat failed: errno " + SocketCalls.errno());
        }
        if ((st.getInt(SocketCalls.STAT_MODE) & SocketCalls.S_IFMT) != SocketCalls.S_IFSOCK) {
            throw new Refusal(what + " is " + describe(fd) + ", not a socket");
        }
        setNonBlocking(fd, what);
    }
}
