package io.vblk.daemon;

import io.vblk.qmp.QmpError;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * qemu-storage-daemon's command line as getopt_long reads it
 * (storage-daemon/qemu-storage-daemon.c): long options with their argument
 * after a space or an {@code =}, {@code -h}/{@code -V}, options applied in
 * the order given and repeatable. Parsing only splits the words; each
 * option's argument is checked when it is applied, so the first bad one
 * names itself ("--blockdev ARG: Parameter 'x' is unexpected").
 */
public final class DaemonCommandLine {
    /** Options taking an argument. */
    static final Set<String> WITH_ARG = Set.of("--blockdev", "--chardev", "--export", "--monitor", "--object",
            "--pidfile", "--nbd-server", "--trace");
    static final Set<String> FLAGS = Set.of("--daemonize", "--help", "--version");

    /** One option in order: {@code --blockdev} and its argument (null for a flag). */
    public record Opt(String name, String arg) {
        @Override
        public String toString() {
            return arg == null ? name : name + " " + arg;
        }
    }

    private final List<Opt> opts;

    private DaemonCommandLine(List<Opt> opts) {
        this.opts = opts;
    }

    public List<Opt> options() {
        return opts;
    }

    public boolean has(String name) {
        for (Opt o : opts) {
            if (o.name().equals(name)) {
                return true;
            }
        }
        return false;
    }

    /** The last value of {@code name}, or null. */
    public String last(String name) {
        String v = null;
        for (Opt o : opts) {
            if (o.name().equals(name)) {
                v = o.arg();
            }
        }
        return v;
    }

    /** Splits {@code args}; a word that is not an option is an error, as for getopt. */
    public static DaemonCommandLine parse(List<String> args) {
        List<Opt> out = new ArrayList<>();
        for (int i = 0; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("-h")) {
                a = "--help";
            } else if (a.equals("-V")) {
                a = "--version";
            } else if (a.equals("-T")) {
                a = "--trace";
            }
            String name = a;
            String value = null;
            int eq = a.indexOf('=');
            if (a.startsWith("--") && eq > 0) {
                name = a.substring(0, eq);
                value = a.substring(eq + 1);
            }
            if (WITH_ARG.contains(name)) {
                if (value == null) {
                    if (i + 1 >= args.size()) {
                        throw QmpError.generic("option '" + name + "' requires an argument");
                    }
                    value = args.get(++i);
                }
                out.add(new Opt(name, value));
            } else if (FLAGS.contains(name)) {
                if (value != null) {
                    throw QmpError.generic("option '" + name + "' doesn't allow an argument");
                }
                out.add(new Opt(name, null));
            } else if (a.startsWith("-")) {
                throw QmpError.generic("unrecognized option '" + a + "'");
            } else {
                throw QmpError.generic("Unexpected argument: " + a);
            }
        }
        return new DaemonCommandLine(out);
    }

    /** {@code --help}: qsd's text for the options vblk implements, and what vblk does differently. */
    public static String help(String prog) {
        return "Usage: " + prog + " [options]\n"
                + "vblk storage daemon: qemu-storage-daemon's command line and QMP, served by vblk\n"
                + "\n"
                + "  -h, --help             display this help and exit\n"
                + "  -V, --version          output version information and exit\n"
                + "\n"
                + "  --blockdev [driver=]<driver>[,node-name=<N>][,discard=unmap]\n"
                + "             [,cache.direct=off][,cache.no-flush=off]\n"
                + "             [,read-only=on|off][,detect-zeroes=off]\n"
                + "             [,driver specific parameters...]\n"
                + "                         configure a block backend; drivers: file (filename,\n"
                + "                         aio=threads, locking=auto|off), null-co (size,\n"
                + "                         read-zeroes, latency-ns), raw (file, offset, size),\n"
                + "                         qcow2 (file, backing); also as JSON: --blockdev '{...}'\n"
                + "\n"
                + "  --chardev socket,id=<id>,path=<path>,server=on,wait=off\n"
                + "                         a UNIX socket for a QMP monitor\n"
                + "\n"
                + "  --daemonize            daemonize the process, and have the parent exit\n"
                + "                         once startup is complete\n"
                + "\n"
                + "  --export [type=]vhost-user-blk,id=<id>,node-name=<node-name>,\n"
                + "           addr.type=unix,addr.path=<socket-path>[,writable=on|off]\n"
                + "           [,logical-block-size=512][,num-queues=<num-queues>]\n"
                + "           [,iothread=<id>]\n"
                + "                         export the specified block node as a\n"
                + "                         vhost-user-blk device over UNIX domain socket\n"
                + "\n"
                + "  --monitor [chardev=]name[,mode=control]\n"
                + "                         configure a QMP monitor\n"
                + "\n"
                + "  --object iothread,id=<id>[,poll-max-ns=<ns>]\n"
                + "                         create an IOThread\n"
                + "\n"
                + "  --pidfile <path>       write process ID to a file after startup\n"
                + "\n"
                + "SIGTERM, SIGINT and the QMP command 'quit' stop the daemon cleanly: exports are\n"
                + "drained, images flushed and closed, sockets and the pid file removed.\n";
    }
}
