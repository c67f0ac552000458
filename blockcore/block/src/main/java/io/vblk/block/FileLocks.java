package io.vblk.block;

import com.sun.jna.Memory;
import com.sun.jna.Native;

import io.vblk.aio.Errno;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Image locking as QEMU's raw-posix does it ({@code raw_apply_lock_bytes},
 * {@code raw_check_lock_bytes}): open-file-description (OFD) byte-range
 * locks, so vblk, qemu, qemu-img and qemu-storage-daemon see each other.
 * For each permission bit i the holder takes a shared lock on byte 100+i;
 * for each permission it does not share with others, one on byte 200+i.
 * Before that it checks, with {@code F_OFD_GETLK}, that nobody holds byte
 * 200+i for a permission it takes, nor byte 100+i for one it does not share.
 *
 * <p>A writer takes consistent-read, write, write-unchanged and resize and
 * shares neither write nor resize; a reader takes consistent-read and shares
 * neither write nor resize (as {@code qemu-img info} does): readers coexist,
 * a writer excludes every other opener.
 *
 * <p>{@code locking=on} is strict. {@code locking=auto} (the default) is the
 * same against other processes, but tolerates a conflict with a lock this JVM
 * holds itself (two machines of one test process handing an image over, as a
 * migration's source and destination do: QEMU's destination would open the
 * image inactive). The locks live on a descriptor of their own, so a reopen
 * of the data descriptor keeps them.
 */
final class FileLocks implements AutoCloseable {
    private static final int PERM_BASE = 100;
    private static final int SHARED_BASE = 200;
    /** BLK_PERM_CONSISTENT_READ, WRITE, WRITE_UNCHANGED, RESIZE: bit numbers 0..3. */
    private static final int PERM_BITS = 4;
    private static final int READ_PERMS = 0b0001;
    private static final int WRITE_PERMS = 0b1111;
    /** Write and resize are never shared. */
    private static final int UNSHARED = 0b1010;
    private static final String[] PERM_NAMES = {"consistent read", "write", "write unchanged", "resize"};

    /** Bytes locked by this JVM, per file ({@code dev:ino}), with a hold count each. */
    private static final Map<String, int[]> IN_PROCESS = new HashMap<>();

    private final Path path;
    private final int fd;
    private final boolean strict;
    private final String key;
    private final Memory flock = new Memory(FileIo.FLOCK_SIZE);
    private int perms;
    private int unshared;

    private FileLocks(Path path, int fd, boolean strict, String key) {
        this.path = path;
        this.fd = fd;
        this.strict = strict;
        this.key = key;
    }

    /** Opens a lock descriptor for {@code path} and takes the locks of a reader or writer, or throws. */
    static FileLocks acquire(Path path, boolean readOnly, boolean strict) {
        int fd = FileIo.open(path.toString(), FileIo.O_RDONLY | FileIo.O_CLOEXEC);
        if (fd < 0) {
            throw new BlockException("cannot open '" + path + "' to lock it: " + Errno.name(Native.getLastError()));
        }
        FileLocks l = new FileLocks(path, fd, strict, fileKey(fd));
        String err = l.change(readOnly ? READ_PERMS : WRITE_PERMS, UNSHARED);
        if (err != null) {
            FileIo.close(fd);
            throw new BlockException(err);
        }
        return l;
    }

    private static String fileKey(int fd) {
        Memory st = new Memory(FileIo.STATX_SIZE);
        st.clear();
        if (FileIo.statx(fd, "", FileIo.AT_EMPTY_PATH, 0x100 /* STATX_INO */, st) < 0) {
            return "fd" + fd;
        }
        return st.getInt(136) + ":" + st.getInt(140) + ":" + st.getLong(32);
    }

    /** Switches to a reader's or a writer's locks (a reopen); null or the reason it is refused. */
    String setReadOnly(boolean readOnly) {
        return change(readOnly ? READ_PERMS : WRITE_PERMS, UNSHARED);
    }

    /** Drops every lock (an inactivated node: the migration destination takes over). */
    void releaseAll() {
        change(0, 0);
    }

    /** Takes back the locks of a reader or writer after {@link #releaseAll()}. */
    String reacquire(boolean readOnly) {
        return change(readOnly ? READ_PERMS : WRITE_PERMS, UNSHARED);
    }

    private String change(int newPerms, int newUnshared) {
        synchronized (IN_PROCESS) {
            for (int i = 0; i < PERM_BITS; i++) {
                int bit = 1 << i;
                if ((newPerms & bit) != 0 && (perms & bit) == 0 && held(SHARED_BASE + i)) {
                    return "Failed to get \"" + PERM_NAMES[i] + "\" lock on '" + path
                            + "': is another process using the image?";
                }
                if ((newUnshared & bit) != 0 && (unshared & bit) == 0 && held(PERM_BASE + i)) {
                    return "Failed to get shared \"" + PERM_NAMES[i] + "\" lock on '" + path
                            + "': is another process using the image?";
                }
            }
            for (int i = 0; i < PERM_BITS; i++) {
                int bit = 1 << i;
                apply(PERM_BASE + i, (perms & bit) != 0, (newPerms & bit) != 0);
                apply(SHARED_BASE + i, (unshared & bit) != 0, (newUnshared & bit) != 0);
            }
            perms = newPerms;
            unshared = newUnshared;
            return null;
        }
    }

    /** Whether someone else (another open file description) holds {@code off}, by {@code F_OFD_GETLK}. */
    private boolean held(int off) {
        setFlock(FileIo.F_WRLCK, off);
        if (FileIo.fcntl(fd, FileIo.F_OFD_GETLK, flock) < 0) {
            throw new BlockException("cannot test the lock of '" + path + "': " + Errno.name(Native.getLastError()));
        }
        if (flock.getShort(0) == FileIo.F_UNLCK) {
            return false;
        }
        if (strict) {
            return true;
        }
        int[] mine = IN_PROCESS.get(key);
        return mine == null || mine[off] == 0; // auto: a lock of this JVM's own is not a conflict
    }

    private void apply(int off, boolean had, boolean want) {
        if (had == want) {
            return;
        }
        setFlock(want ? FileIo.F_RDLCK : FileIo.F_UNLCK, off);
        if (FileIo.fcntl(fd, FileIo.F_OFD_SETLK, flock) < 0) {
            throw new BlockException("cannot lock byte " + off + " of '" + path + "': " + Errno.name(Native.getLastError()));
        }
        int[] mine = IN_PROCESS.computeIfAbsent(key, k -> new int[SHARED_BASE + PERM_BITS]);
        mine[off] += want ? 1 : -1;
    }

    private void setFlock(short type, long off) {
        flock.clear();
        flock.setShort(0, type);
        flock.setShort(2, (short) 0); // SEEK_SET
        flock.setLong(8, off);
        flock.setLong(16, 1);
    }

    @Override
    public void close() {
        synchronized (IN_PROCESS) {
            change(0, 0);
            int[] mine = IN_PROCESS.get(key);
            if (mine != null && java.util.Arrays.stream(mine).allMatch(c -> c == 0)) {
                IN_PROCESS.remove(key);
            }
        }
        FileIo.close(fd);
    }
}
