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

    /** An {@code --object iothread} by id, or null. */
    default IOThread iothread(String id) {
        return null;
    }

    /**
     * Who else hears of a vhost-user export's front-end (connects, rings,
     * refusals) besides the daemon's log: {@code vblk serve} prints them. Null: nobody.
     */
    default io.vblk.vhost.VhostUserEvents vhostUserEvents(String exportId) {
        return null;
    }
}
