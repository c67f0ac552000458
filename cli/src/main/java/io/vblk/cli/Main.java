package io.vblk.cli;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.util.Properties;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code vblk} command: picocli dispatch to its subcommands. */
@Command(name = "vblk", mixinStandardHelpOptions = true, versionProvider = Main.Version.class,
        description = "A virtio-blk device emulator with an AioContext-style iothread dataplane.%n"
                + "Logging: set VBLK_LOG=debug|info|warn|error (default warn).",
        subcommands = {BootCommand.class, BenchCommand.class, ScenarioCommand.class, ServeCommand.class, NbdCommand.class,
                DaemonCommand.class,
                CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    /** Exit code: a hang was detected (the watchdog's dump was printed). */
    public static final int EXIT_HANG = 3;
    /** Exit code: the command ran but failed (a boot without a valid MBR, data mismatch). */
    public static final int EXIT_FAILED = 1;
    /** Exit code: bad usage or input (picocli's own code for parameter errors). */
    public static final int EXIT_USAGE = 2;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        String level = System.getenv("VBLK_LOG");
        System.setProperty("org.slf4j.simpleLogger.defaultLogLevel", level == null ? "warn" : level);
        System.setProperty("org.slf4j.simpleLogger.showThreadName", "true");
        System.exit(execute(args));
    }

    /** Runs the command line and returns the exit code. */
    public static int execute(String... args) {
        return execute(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args);
    }

    /** Runs the command line with the given output streams (tests call this). */
    public static int execute(PrintWriter out, PrintWriter err, String... args) {
        if (args.length > 0 && args[0].equals("daemon")) {
            return DaemonCommand.run(out, err, java.util.Arrays.asList(args).subList(1, args.length));
        }
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(out);
        cl.setErr(err);
        cl.setParameterExceptionHandler((ex, params) -> {
            CommandLine c = ex.getCommandLine();
            c.getErr().println("vblk: " + ex.getMessage());
            c.getErr().println("(see '" + c.getCommandSpec().qualifiedName() + " --help')");
            return EXIT_USAGE;
        });
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            cmd.getErr().println("vblk: " + ex.getMessage());
            return EXIT_FAILED;
        });
        int code = cl.execute(args);
        out.flush();
        err.flush();
        return code;
    }

    /** {@code vblk --version}: the version and the commit the jar was built from (version.properties, filled by Maven). */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() throws IOException {
            Properties p = new Properties();
            try (InputStream in = Main.class.getResourceAsStream("version.properties")) {
                if (in != null) {
                    p.load(in);
                }
            }
            String commit = p.getProperty("commit", "");
            if (commit.isEmpty() || commit.startsWith("${")) {
                commit = "unknown";
            } else if ("true".equals(p.getProperty("dirty"))) {
                commit += " (modified)";
            }
            return new String[] {"vblk " + p.getProperty("version", "unknown") + " (commit " + commit + ")",
                    "Java " + System.getProperty("java.version") + " (" + System.getProperty("java.vm.name") + ")"};
        }
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }
}
