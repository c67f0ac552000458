package io.vblk.tests.linux;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code vblk serve --socket SOCK --image IMAGE --format raw …} as a child
 * JVM, as a user runs it (the command's own {@code main}, on the test class
 * path, which holds the freshly built modules): ready when it prints
 * {@code vblk serve: listening on}. A child process, not an in-process
 * server, so a test can SIGKILL it as a crash would.
 */
public final class VblkServe extends VhostUserBackend {
    private final Path image;
    private final List<String> extra;
    /** Options of the first start only (a test switch); a restart runs without them. */
    private final List<String> firstStartOnly;
    private boolean started;

    private VblkServe(String name, Path socket, Path image, Path logDir, List<String> extra,
            List<String> firstStartOnly) {
        super(name, socket, logDir);
        this.image = image;
        this.extra = List.copyOf(extra);
        this.firstStartOnly = List.copyOf(firstStartOnly);
    }

    /** Starts {@code vblk serve} on {@code image} (raw) with the extra options {@code extra}. */
    public static VblkServe start(String name, Path socket, Path image, Path logDir, String... extra)
            throws IOException, InterruptedException {
        VblkServe s = new VblkServe(name, socket, image, logDir, List.of(extra), List.of());
        s.start();
        return s;
    }

    /**
     * As {@link #start}, the first start with the test switch
     * {@code --x-hold-after-take NTH}: the back-end holds the {@code nth} write
     * request it takes, marked in flight, and prints "holding write request";
     * {@link #restart} runs without the switch, as an ordinary back-end.
     */
    public static VblkServe startHoldingWrite(String name, Path socket, Path image, Path logDir, long nth,
            String... extra) throws IOException, InterruptedException {
        VblkServe s = new VblkServe(name, socket, image, logDir, List.of(extra),
                List.of("--x-hold-after-take", Long.toString(nth)));
        s.start();
        return s;
    }

    @Override
    protected List<String> command() {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add("io.vblk.cli.Main");
        cmd.addAll(List.of("serve", "--socket", socket.toString(), "--image", image.toString(), "--format", "raw"));
        cmd.addAll(extra);
        if (!started) {
            cmd.addAll(firstStartOnly);
        }
        started = true;
        return cmd;
    }

    @Override
    protected void awaitReady(Process p, ProcessLog log) throws InterruptedException {
        log.await("vblk serve: listening on", READY_BOUND);
    }
}
