package io.vblk.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code vblk} command: picocli dispatch to its subcommands. */
@Command(name = "vblk", mixinStandardHelpOptions = true, version = "vblk 0.1.0",
        description = "A virtio-blk device emulator with an AioContext-style iothread dataplane.",
        subcommands = {BootCommand.class, CommandLine.HelpCommand.class})
public final class Main implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    public static void main(String[] args) {
        System.exit(execute(args));
    }

    /** Runs the command line and returns the exit code (tests call this). */
    public static int execute(String... args) {
        return new CommandLine(new Main()).execute(args);
    }

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
