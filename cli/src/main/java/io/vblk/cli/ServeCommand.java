package io.vblk.cli;

import java.util.concurrent.Callable;

import picocli.CommandLine.Command;

/** {@code vblk serve}: registered here; implemented by its owner (see the open issues). */
@Command(name = "serve", mixinStandardHelpOptions = true, description = "(being built)")
final class ServeCommand implements Callable<Integer> {
    @Override
    public Integer call() {
        System.err.println("vblk serve: not built yet");
        return Main.EXIT_USAGE;
    }
}
