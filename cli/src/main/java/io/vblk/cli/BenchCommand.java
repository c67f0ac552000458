package io.vblk.cli;

import java.util.concurrent.Callable;

import picocli.CommandLine.Command;

/** {@code vblk bench}: registered here; implemented by its owner (see the open issues). */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "(being built)")
final class BenchCommand implements Callable<Integer> {
    @Override
    public Integer call() {
        System.err.println("vblk bench: not built yet");
        return Main.EXIT_USAGE;
    }
}
