package io.vblk.cli;

import java.util.concurrent.Callable;

import picocli.CommandLine.Command;

/** {@code vblk boot}: boot the simulated guest from a virtio-blk disk. */
@Command(name = "boot", mixinStandardHelpOptions = true,
        description = "Boot the simulated machine: SeaBIOS-like firmware reads the MBR through virtio-blk.")
final class BootCommand implements Callable<Integer> {
    @Override
    public Integer call() {
        System.err.println("vblk boot: the simulated machine is not built yet (see the open issues)");
        return 2;
    }
}
