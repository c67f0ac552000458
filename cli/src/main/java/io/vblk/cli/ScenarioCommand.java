package io.vblk.cli;

import java.util.concurrent.Callable;

import picocli.CommandLine.Command;

/** {@code vblk scenario}: registered here; implemented by its owner (see the open issues). */
@Command(name = "scenario", mixinStandardHelpOptions = true, description = "(being built)")
final class ScenarioCommand implements Callable<Integer> {
    @Override
    public Integer call() {
        System.err.println("vblk scenario: not built yet");
        return Main.EXIT_USAGE;
    }
}
