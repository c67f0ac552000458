package io.vblk.block.rbd;

import io.vblk.aio.Errno;
import io.vblk.block.BlockException;

import com.sun.jna.Memory;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One open RBD image with the cluster handle and I/O context it was opened
 * through: QEMU's {@code qemu_rbd_connect} plus {@code rbd_open} (block/rbd.c),
 * and their teardown. Opening blocks (monitors, the image header) and runs in
 * the main loop; closing is bounded, because {@code rbd_close} and
 * {@code rados_shutdown} wait for a cluster that may be gone.
 */
final class RbdConnection implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(RbdConnection.class);

    /**
     * Timeouts set when the configuration leaves them infinite (librados'
     * default 0): a monitor or OSD that never answers fails the request with
     * -ETIMEDOUT into the error policy instead of hanging it forever. Minutes,
     * not seconds: a loaded cluster's writes can take seconds.
     */
    static final int MON_OP_TIMEOUT_S = 60;
    static final int OSD_OP_TIMEOUT_S = 120;
    /** How long {@link #close} waits for librbd/librados to let go before it gives up on them. */
    static final Duration CLOSE_BOUND = Duration.ofSeconds(30);

    private final RbdOptions options;
    private long cluster;
    private long ioctx;
    private long image;

    private RbdConnection(RbdOptions options) {
        this.options = options;
    }

    /** Connects and opens the image; a {@link BlockException} names the monitors, pool or image that failed. */
    static RbdConnection open(RbdOptions o) {
        try {
            // run the bindings' registration now, so a missing library is one clear error at open
            Class.forName(LibRados.class.getName(), true, RbdConnection.class.getClassLoader());
            Class.forName(LibRbd.class.getName(), true, RbdConnection.class.getClassLoader());
        } catch (ClassNotFoundException | LinkageError e) {
            throw new BlockException("rbd: cannot load " + LibRados.SONAME + " / " + LibRbd.SONAME
                    + " (Debian: apt-get install librados2 librbd1): " + e);
        }
        RbdConnection c = new RbdConnection(o);
        try {
            c.connect();
            return c;
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
    }

    long image() {
        return image;
    }

    RbdOptions options() {
        return options;
    }

    private void connect() {
        Memory out = new Memory(8);
        String user = options.userOrDefault();
        check(LibRados.rados_create(Memory.nativeValue(out), user), "rados_create(" + user + ")");
        cluster = out.getLong(0);
        int r = LibRados.rados_conf_read_file(cluster, options.conf());
        if (options.conf() != null && r < 0) {
            throw fail(r, "cannot read the Ceph configuration file '" + options.conf() + "'");
        }
        setIfInfinite("rados_mon_op_timeout", MON_OP_TIMEOUT_S);
        setIfInfinite("rados_osd_op_timeout", OSD_OP_TIMEOUT_S);
        if (options.cacheDirect()) {
            confSet("rbd_cache", "false"); // cache.direct=on: no writeback cache in librbd (QEMU does the same)
        }
        for (Map.Entry<String, String> e : options.radosConf().entrySet()) {
            confSet(e.getKey(), e.getValue());
        }
        r = LibRados.rados_connect(cluster);
        if (r < 0) {
            throw fail(r, "cannot connect to the Ceph cluster: monitors " + confGet("mon_host") + " (configuration "
                    + (options.conf() != null ? options.conf() : "librados' default search") + ", user "
                    + user + ") did not answer within client_mount_timeout=" + confGet("client_mount_timeout") + "s");
        }
        r = LibRados.rados_ioctx_create(cluster, options.pool(), Memory.nativeValue(out));
        if (r < 0) {
            throw fail(r, r == -2 ? "pool '" + options.pool() + "' does not exist" : "cannot open pool '"
                    + options.pool() + "'");
        }
        ioctx = out.getLong(0);
        if (options.namespace() != null) {
            LibRados.rados_ioctx_set_namespace(ioctx, options.namespace());
        }
        boolean ro = options.opensReadOnly();
        r = ro ? LibRbd.rbd_open_read_only(ioctx, options.image(), Memory.nativeValue(out), options.snapshot())
                : LibRbd.rbd_open(ioctx, options.image(), Memory.nativeValue(out), options.snapshot());
        if (r < 0) {
            String where = options.pool() + (options.namespace() != null ? "/" + options.namespace() : "") + "/"
                    + options.image() + (options.snapshot() != null ? "@" + options.snapshot() : "");
            throw fail(r, r == -2 ? "image '" + where + "' does not exist" : "cannot open image '" + where + "'");
        }
        image = out.getLong(0);
        LOG.debug("qemu_rbd_open {} read-only={} cache.direct={}", options.toFilename(), ro, options.cacheDirect());
    }

    private void setIfInfinite(String option, int seconds) {
        String v = confGet(option);
        if (v == null || v.equals("0")) {
            confSet(option, Integer.toString(seconds));
        }
    }

    private void confSet(String key, String value) {
        int r = LibRados.rados_conf_set(cluster, key, value);
        if (r < 0) {
            throw fail(r, "invalid Ceph setting " + key + "=" + value);
        }
    }

    private String confGet(String key) {
        byte[] buf = new byte[512];
        if (LibRados.rados_conf_get(cluster, key, buf, buf.length) < 0) {
            return null;
        }
        int n = 0;
        while (n < buf.length && buf[n] != 0) {
            n++;
        }
        return new String(buf, 0, n, StandardCharsets.UTF_8);
    }

    /** The image's size in bytes as librbd knows it now (it follows resizes by other clients). */
    long size() {
        Memory out = new Memory(8);
        int r = LibRbd.rbd_get_size(image, Memory.nativeValue(out));
        if (r < 0) {
            throw fail(r, "rbd_get_size on " + options.toFilename());
        }
        return out.getLong(0);
    }

    private static void check(int r, String what) {
        if (r < 0) {
            throw fail(r, what);
        }
    }

    static BlockException fail(int r, String what) {
        return new BlockException("rbd: " + what + ": " + errnoName(-r));
    }

    /** "errno 2 (ENOENT)"-style text for a librados/librbd error. */
    static String errnoName(int errno) {
        String n = errno == ETIMEDOUT ? "ETIMEDOUT" : errno == ENOTCONN ? "ENOTCONN" : Errno.name(errno);
        return n.startsWith("errno") ? n : n + " (errno " + errno + ")";
    }

    /** Linux x86-64 errnos librados answers that {@link Errno} does not name. */
    static final int ENOTCONN = 107;
    static final int ETIMEDOUT = 110;

    /**
     * Closes the image, the I/O context and the cluster handle: QEMU's
     * {@code qemu_rbd_close}. The caller has no request in flight. Bounded:
     * when the cluster is gone librbd can block in {@code rbd_close} for ever
     * (qsd 7.2 hangs there until SIGKILL), so the teardown runs on its own
     * thread and is abandoned, logged, after {@link #CLOSE_BOUND}.
     */
    @Override
    public void close() {
        long img = image;
        long io = ioctx;
        long cl = cluster;
        image = 0;
        ioctx = 0;
        cluster = 0;
        if (img == 0 && io == 0 && cl == 0) {
            return;
        }
        CountDownLatch done = new CountDownLatch(1);
        Thread t = new Thread(() -> {
            try {
                if (img != 0) {
                    int r = LibRbd.rbd_close(img);
                    if (r < 0) {
                        LOG.warn("rbd_close {}: {}", options.toFilename(), errnoName(-r));
                    }
                }
                if (io != 0) {
                    LibRados.rados_ioctx_destroy(io);
                }
                if (cl != 0) {
                    LibRados.rados_shutdown(cl);
                }
            } finally {
                done.countDown();
            }
        }, "rbd-close");
        t.setDaemon(true);
        t.start();
        try {
            if (!done.await(CLOSE_BOUND.toMillis(), TimeUnit.MILLISECONDS)) {
                LOG.error("rbd: closing {} did not finish within {} s (is the cluster gone?); abandoning the "
                        + "librbd handles", options.toFilename(), CLOSE_BOUND.toSeconds());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
