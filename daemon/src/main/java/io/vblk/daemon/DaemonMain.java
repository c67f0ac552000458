package io.vblk.daemon;

import io.vblk.aio.HangDetectedException;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code vblk daemon}: qemu-storage-daemon's {@code main} — parse the
 * options, apply them in order (the first that fails ends the daemon with
 * exit status 1 before anything is served), write the pid file, then serve
 * until {@code quit}, SIGTERM or SIGINT, and stop cleanly.
 *
 * <p>{@code --daemonize}: a JVM cannot fork, so the parent starts the same
 * command again without {@code --daemonize} in a new session
 * ({@code setsid}) and with {@code VBLK_DAEMONIZED=1}; the child reports on
 * its standard output either its start-up error or a readiness line once
 * every export listens, and the parent relays the error or exits 0 — QEMU's
 * {@code os_daemonize} pipe protocol. The child's output after that is
 * discarded, as qsd's goes to /dev/null.
 */
public final class DaemonMain {
    private static final Logger LOG = LoggerFactory.getLogger(DaemonMain.class);
    static final String READY = "vblk-daemon: ready";
    static final String DAEMONIZED_ENV = "VBLK_DAEMONIZED";

    private DaemonMain() {
    }

    /** Runs the daemon with {@code args} (what follows {@code vblk daemon}); returns the exit status. */
    public static int run(List<String> args, PrintStream out, PrintStream err, String version) {
        String prog = "vblk daemon";
        DaemonCommandLine cl;
        try {
            cl = DaemonCommandLine.parse(args);
        } catch (QmpError e) {
            err.println(prog + ": " + e.desc());
            return 1;
        }
        for (DaemonCommandLine.Opt o : cl.options()) {
            if (o.name().equals("--help")) {
                out.print(DaemonCommandLine.help(prog));
                out.flush();
                return 0;
            }
            if (o.name().equals("--version")) {
                out.println(prog + " version " + version + " (speaks qemu-storage-daemon 7.2's options and QMP)");
                out.flush();
                return 0;
            }
        }
        boolean child = "1".equals(System.getenv(DAEMONIZED_ENV));
        if (cl.has("--daemonize") && !child) {
            return daemonize(err);
        }
        Daemon d = new Daemon(version);
        Path pidfile = null;
        try {
            for (DaemonCommandLine.Opt o : cl.options()) {
                try {
                    d.onDispatcher(() -> {
                        apply(d, o);
                        return null;
                    });
                } catch (QmpError e) {
                    err.println(prog + ": " + o + ": " + e.desc());
                    d.close();
                    return 1;
                } catch (HangDetectedException e) {
                    err.println(prog + ": " + o + ": hang detected: " + e.getMessage() + "\n" + e.dump());
                    d.close();
                    return 3;
                } catch (Exception e) {
                    err.println(prog + ": " + o + ": " + e.getMessage());
                    d.close();
                    return 1;
                }
            }
            String pf = cl.last("--pidfile");
            if (pf != null) {
                pidfile = Path.of(pf);
                try {
                    Files.writeString(pidfile, ProcessHandle.current().pid() + "\n");
                } catch (IOException e) {
                    err.println(prog + ": Cannot write pid file '" + pf + "': " + e.getMessage());
                    d.close();
                    return 1;
                }
            }
        } catch (RuntimeException e) {
            d.close();
            throw e;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Thread hook = new Thread(() -> {
            d.requestQuit();
            try {
                stopped.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "vblk-daemon-signal");
        Runtime.getRuntime().addShutdownHook(hook);
        if (child) {
            out.println(READY);
            out.flush();
            PrintStream nowhere = new PrintStream(OutputStream.nullOutputStream());
            System.setOut(nowhere);
            System.setErr(nowhere);
        }
        LOG.info("vblk daemon ready");
        try {
            d.awaitQuit();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try {
            d.close();
            if (pidfile != null) {
                try {
                    Files.deleteIfExists(pidfile);
                } catch (IOException e) {
                    LOG.warn("could not remove the pid file {}: {}", pidfile, e.getMessage());
                }
            }
        } finally {
            stopped.countDown();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException e) {
                // the JVM is already shutting down (SIGTERM): the hook is running and ends now
            }
        }
        return 0;
    }

    /** Applies one option to the daemon (on the QMP dispatcher thread, as a command would run). */
    static void apply(Daemon d, DaemonCommandLine.Opt o) throws IOException {
        switch (o.name()) {
            case "--object": {
                if (o.arg().equals("help")) {
                    throw QmpError.generic("object types: iothread");
                }
                d.objectAdd(OptionSyntax.parse(o.arg(), "qom-type"));
                break;
            }
            case "--blockdev":
                d.blockdevAdd(OptionSyntax.parse(o.arg(), "driver"));
                break;
            case "--export":
                d.exports().add(OptionSyntax.parse(o.arg(), "type"));
                break;
            case "--chardev":
                chardev(d, o.arg());
                break;
            case "--monitor": {
                QapiArgs a = OptionSyntax.parse(o.arg(), "chardev");
                String chardev = a.str("chardev");
                a.optStr("id", null);
                String mode = a.optEnum("mode", "control", "control", "readline");
                boolean pretty = a.optBool("pretty", false);
                a.end();
                if (!mode.equals("control")) {
                    throw QmpError.generic("Only QMP is supported");
                }
                if (pretty) {
                    throw QmpError.generic("pretty=on is not supported yet by vblk's monitor");
                }
                d.monitorAdd(chardev);
                break;
            }
            case "--nbd-server":
                d.nbd().startFromOptions(OptionSyntax.parse(o.arg(), null));
                break;
            case "--trace":
                throw QmpError.generic("--trace is not supported by vblk daemon (use VBLK_LOG=trace)");
            case "--pidfile":
            case "--daemonize":
                break;
            default:
                throw QmpError.generic("unrecognized option '" + o.name() + "'");
        }
    }

    /** {@code --chardev socket,id=C,path=P,server=on,wait=off}: the one chardev kind a monitor needs. */
    private static void chardev(Daemon d, String arg) {
        Map<String, String> m = OptionSyntax.qemuOpts(arg, "backend");
        String backend = null;
        String id = null;
        String path = null;
        boolean server = false;
        boolean wait = true;
        for (Map.Entry<String, String> e : m.entrySet()) {
            switch (e.getKey()) {
                case "backend":
                    backend = e.getValue();
                    break;
                case "id":
                    id = e.getValue();
                    break;
                case "path":
                    path = e.getValue();
                    break;
                case "server":
                    server = onOff("server", e.getValue());
                    break;
                case "wait":
                    wait = onOff("wait", e.getValue());
                    break;
                case "fd":
                case "host":
                case "port":
                case "reconnect":
                case "telnet":
                case "websocket":
                case "tls-creds":
                    throw QmpError.generic("chardev parameter '" + e.getKey() + "' is not supported by vblk daemon "
                            + "(only socket,id=ID,path=PATH,server=on,wait=off)");
                default:
                    throw QmpError.generic("Invalid parameter '" + e.getKey() + "'");
            }
        }
        if (id == null) {
            throw QmpError.generic("Parameter 'id' is missing");
        }
        if (backend == null || !backend.equals("socket")) {
            throw QmpError.generic("chardev backend '" + backend + "' is not supported by vblk daemon (only socket)");
        }
        if (path == null) {
            throw QmpError.generic("chardev: socket: 'path' is required");
        }
        if (!server) {
            throw QmpError.generic("chardev '" + id + "': vblk daemon only listens (server=on)");
        }
        if (wait) {
            throw QmpError.generic("chardev '" + id + "': wait=on is not supported (use wait=off)");
        }
        d.chardevAdd(id, Path.of(path));
    }

    private static boolean onOff(String key, String v) {
        switch (v) {
            case "on":
            case "yes":
            case "true":
                return true;
            case "off":
            case "no":
            case "false":
                return false;
            default:
                throw QmpError.generic("Parameter '" + key + "' expects 'on' or 'off'");
        }
    }

    /**
     * The parent of {@code --daemonize}: starts the daemon as a child in its
     * own session and exits once it is ready (0) or has failed (its status,
     * its error relayed).
     */
    private static int daemonize(PrintStream err) {
        ProcessHandle.Info info = ProcessHandle.current().info();
        if (info.command().isEmpty() || info.arguments().isEmpty()) {
            err.println("vblk daemon: --daemonize: cannot find this process's command line");
            return 1;
        }
        List<String> cmd = new ArrayList<>();
        if (Files.isExecutable(Path.of("/usr/bin/setsid"))) {
            cmd.add("/usr/bin/setsid");
        }
        cmd.add(info.command().get());
        for (String a : info.arguments().get()) {
            if (!a.equals("--daemonize")) {
                cmd.add(a);
            }
        }
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
        pb.environment().put(DAEMONIZED_ENV, "1");
        Process p;
        try {
            p = pb.start();
        } catch (IOException e) {
            err.println("vblk daemon: --daemonize: cannot start the daemon: " + e.getMessage());
            return 1;
        }
        try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                if (line.equals(READY)) {
                    return 0;
                }
                err.println(line);
            }
            return p.waitFor();
        } catch (IOException e) {
            err.println("vblk daemon: --daemonize: " + e.getMessage());
            return 1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return 1;
        }
    }
}
