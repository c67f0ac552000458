package io.vblk.tests.linux;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A vhost-user-blk back-end process the Linux guest's QEMU connects to
 * ({@code -chardev socket,path=SOCKET}): {@code vblk serve} or
 * {@code qemu-storage-daemon}. Its output goes to {@code NAME.log} in the
 * test's log directory. {@link #kill9} and {@link #restart} let a test crash
 * it and bring it back with the same arguments (QEMU's
 * {@code reconnect=1} then reconnects); closing it sends SIGTERM, then
 * SIGKILL if it has not ended within {@link #STOP_GRACE}.
 */
public abstract class VhostUserBackend implements AutoCloseable {
    static final Duration READY_BOUND = Duration.ofSeconds(90);
    static final Duration STOP_GRACE = Duration.ofSeconds(10);

    protected final String name;
    protected final Path socket;
    protected final Path logDir;
    private Process process;
    private ProcessLog log;
    private int starts;

    protected VhostUserBackend(String name, Path socket, Path logDir) {
        this.name = name;
        this.socket = socket;
        this.logDir = logDir;
    }

    /** The command line, the same for every (re)start. */
    protected abstract List<String> command();

    /** Runs before each start: what must exist before the process does (a socket it connects to). */
    protected void beforeStart() throws IOException {
    }

    /** Waits, bounded, until the process serves {@link #socket}; fails the test otherwise. */
    protected abstract void awaitReady(Process p, ProcessLog log) throws IOException, InterruptedException;

    /** Starts the process (again, after {@link #kill9}) and waits until it is ready. */
    protected final void start() throws IOException, InterruptedException {
        Path file = logDir.resolve(name + ".log");
        List<String> cmd = command();
        Files.writeString(file, (starts++ == 0 ? "" : "\n") + "### start " + starts + ": " + String.join(" ", cmd)
                + "\n", StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        beforeStart();
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("VBLK_LOG", "info");
        process = pb.start();
        log = ProcessLog.tee(name, process.getInputStream(), file);
        try {
            awaitReady(process, log);
        } catch (IOException | InterruptedException | RuntimeException | Error e) {
            HostTools.kill(process.toHandle());
            throw e;
        }
    }

    public String name() {
        return name;
    }

    public Path socket() {
        return socket;
    }

    public ProcessLog log() {
        return log;
    }

    public ProcessHandle process() {
        return process.toHandle();
    }

    /** SIGKILL, as a crash: no clean-up runs, the socket file stays. Returns once the process is reaped. */
    public void kill9() throws InterruptedException {
        process.destroyForcibly();
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            throw new AssertionError(name + " did not die of SIGKILL within 30 s");
        }
    }

    /** Starts the back-end again with the same arguments (after {@link #kill9}, or after it exited). */
    public void restart() throws IOException, InterruptedException {
        if (process.isAlive()) {
            throw new IllegalStateException(name + " is still running; kill9() it first");
        }
        start();
    }

    /** What the failure message of a test should quote: the end of the back-end's log. */
    public String describe() {
        return "--- " + name + " (" + (log == null ? "never started" : log.file()) + ") ---\n"
                + (log == null ? "" : log.tail(30));
    }

    @Override
    public void close() throws IOException {
        if (process == null) {
            return;
        }
        process.destroy();
        try {
            if (!process.waitFor(STOP_GRACE.toMillis(), TimeUnit.MILLISECONDS)) {
                HostTools.kill(process.toHandle());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            HostTools.kill(process.toHandle());
        }
    }
}
