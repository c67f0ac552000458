package io.vblk.daemon;

import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockLayer;

/**
 * What an {@link ExportType} may use of the daemon to build an export: the
 * main loop, the block graph and the IOThread an export without
 * {@code iothread=} is served from.
 */
public interface ExportContext {
    MainLoop loop();

    BlockLayer layer();

    /** The IOThread for exports that name none (created on first use). Main loop. */
    IOThread defaultIothread();

    /**
     * Runs {@code task} in the main loop and returns its result; from the main
     * loop itself it runs inline. Bounded by the daemon's watchdog.
     */
    <T> T inMainLoop(String what, java.util.concurrent.Callable<T> task);
}
