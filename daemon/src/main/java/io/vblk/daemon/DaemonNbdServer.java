package io.vblk.daemon;

import io.vblk.nbd.NbdAddress;
import io.vblk.nbd.NbdException;
import io.vblk.nbd.NbdServer;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpCommands;
import io.vblk.qmp.QmpError;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The daemon's one NBD server: QEMU's blockdev-nbd.c ({@code nbd_server},
 * {@code nbd_server_start_options} for {@code --nbd-server},
 * {@code qmp_nbd_server_start} and {@code qmp_nbd_server_stop}). It owns the
 * {@link NbdServer} listening socket; the exports on it are
 * {@link NbdBlockExport}s, created through {@link BlockExports} like any
 * other export. Methods run on the QMP dispatcher (or at start-up, where
 * options are applied there too); the server itself is driven in the main
 * loop.
 */
final class DaemonNbdServer {
    private static final Logger LOG = LoggerFactory.getLogger(DaemonNbdServer.class);

    private final Daemon d;
    private volatile NbdServer server;

    DaemonNbdServer(Daemon d) {
        this.d = d;
    }

    /** The running server, or null (QEMU's "NBD server not running"). */
    NbdServer server() {
        return server;
    }

    /**
     * {@code --nbd-server}: QAPI's {@code NbdServerOptions}, whose
     * {@code addr} is a flat {@code SocketAddress}
     * ({@code addr.type=unix,addr.path=P} / {@code addr.type=inet,addr.host=H,addr.port=N}).
     */
    void startFromOptions(QapiArgs a) {
        NbdAddress addr = flatAddress(a.object("addr"));
        start(addr, a);
    }

    /**
     * {@code nbd-server-start}: {@code addr} is a {@code SocketAddressLegacy}
     * ({@code {"type": "unix", "data": {"path": P}}}). The flat
     * {@code SocketAddress} of the command line is accepted too.
     */
    void startFromQmp(QapiArgs a) {
        QapiArgs addr = a.object("addr");
        NbdAddress na;
        if (addr.has("data")) {
            String type = addr.enumValue("type", "inet", "unix", "vsock", "fd");
            QapiArgs data = addr.object("data");
            na = address(type, data);
            addr.end();
        } else {
            na = flatAddress(addr);
        }
        start(na, a);
    }

    private static NbdAddress flatAddress(QapiArgs addr) {
        String type = addr.enumValue("type", "inet", "unix", "vsock", "fd");
        NbdAddress na = address(type, addr);
        return na;
    }

    /** The members of one {@code SocketAddress} variant; what vblk cannot listen on is refused by name. */
    private static NbdAddress address(String type, QapiArgs v) {
        switch (type) {
            case "unix": {
                String path = v.str("path");
                boolean abs = v.optBool("abstract", false);
                boolean tight = v.optBool("tight", true);
                v.end();
                if (abs || !tight) {
                    throw QmpError.generic("addr.abstract and addr.tight are not supported by vblk's NBD server");
                }
                return NbdAddress.unix(Path.of(path));
            }
            case "inet": {
                String host = v.str("host");
                String port = v.str("port");
                for (String k : new String[] {"numeric", "to", "ipv4", "ipv6", "keep-alive", "mptcp"}) {
                    v.accept(k);
                    if (v.has(k)) {
                        throw QmpError.generic("addr." + k + " is not supported by vblk's NBD server");
                    }
                }
                v.end();
                int p;
                try {
                    p = Integer.parseInt(port);
                } catch (NumberFormatException e) {
                    throw QmpError.generic("address resolution failed for " + host + ":" + port
                            + ": vblk takes a numeric port");
                }
                try {
                    return NbdAddress.inet(host, p);
                } catch (IllegalArgumentException e) {
                    throw QmpError.generic(e.getMessage());
                }
            }
            default:
                throw QmpError.generic("NBD server on addr.type=" + type + " is not supported by vblk "
                        + "(use addr.type=unix or addr.type=inet)");
        }
    }

    /** Reads the server's own members and starts listening: QEMU's {@code nbd_server_start}. */
    private void start(NbdAddress addr, QapiArgs a) {
        String tls = a.optStr("tls-creds", null);
        String authz = a.optStr("tls-authz", null);
        long max = a.optInt("max-connections", 0);
        a.end();
        if (tls != null || authz != null) {
            throw QmpError.generic("tls-creds/tls-authz are not supported by vblk's NBD server (it has no TLS)");
        }
        if (max != 0) {
            throw QmpError.generic("max-connections is not supported by vblk's NBD server (connections are not "
                    + "limited)");
        }
        synchronized (this) {
            if (server != null) {
                throw QmpError.generic("NBD server already running");
            }
            try {
                server = d.inMainLoop("nbd-server-start", () -> NbdServer.start(d.layer(), addr, 0, null));
            } catch (NbdException | IllegalStateException e) {
                throw QmpError.generic("Failed to bind socket to " + addr + ": " + e.getMessage());
            }
        }
        LOG.info("NBD server started on {}", addr);
    }

    /**
     * {@code nbd-server-stop}: every NBD export is deleted (as
     * {@code blk_exp_close_all_type} does, each with its
     * {@code BLOCK_EXPORT_DELETED}), then the listening socket is closed.
     */
    void stop() {
        NbdServer s;
        synchronized (this) {
            s = server;
            if (s == null) {
                throw QmpError.generic("NBD server not running");
            }
        }
        List<String> ids = new ArrayList<>();
        for (Map.Entry<BlockExport, Boolean> e : d.exports().list()) {
            if (!e.getValue() && e.getKey().type().equals(NbdBlockExport.TYPE)) {
                ids.add(e.getKey().id());
            }
        }
        for (String id : ids) {
            try {
                d.exports().delete(id, true);
            } catch (QmpError e) {
                LOG.debug("nbd-server-stop: export '{}' already going: {}", id, e.desc());
            }
        }
        CompletableFuture<Void> f = d.inMainLoop("nbd-server-stop", s::stop);
        try {
            f.get(Daemon.MAIN_LOOP_BOUND.toSeconds(), TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.error("NBD server on {}: stopping did not complete: {}", s.address(), e.toString());
        }
        synchronized (this) {
            server = null;
        }
        LOG.info("NBD server on {} stopped", s.address());
    }

    /** At daemon shutdown, after the exports: the socket is closed if a server runs. */
    void shutdown() {
        if (server != null) {
            try {
                stop();
            } catch (RuntimeException e) {
                LOG.error("stopping the NBD server at shutdown failed", e);
            }
        }
    }

    /** {@code nbd-server-start}, {@code nbd-server-stop}. */
    void register(QmpCommands c) {
        c.register("nbd-server-start", a -> {
            startFromQmp(a);
            return null;
        });
        c.register("nbd-server-stop", a -> {
            a.end();
            stop();
            return null;
        });
    }
}
