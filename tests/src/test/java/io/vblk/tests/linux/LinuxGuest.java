package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * A real Linux guest for the integration tests: Debian's cloud kernel and an
 * initramfs of busybox, fio and mkfs.ext4 (see {@link GuestEnvironment}),
 * booted by {@code qemu-system-x86_64} under TCG from a vhost-user-blk disk
 * ({@code /dev/vda}) served by the back-end under test. The test drives it
 * over a serial port — {@link #run} sends one shell command and returns its
 * output and exit status — and QEMU over QMP ({@link #qmp}). Every wait has
 * a deadline (a boot takes about 5 s; the bounds are generous for a loaded
 * two-core machine) and ends by reading what the guest or QEMU sent, never
 * by sleeping.
 *
 * <p>The guest outlives a QEMU process: {@link #migrateTo} live-migrates it
 * to a second QEMU on another back-end and carries on there. With
 * {@link Options#reconnect} QEMU's vhost-user socket reconnects
 * ({@code reconnect=1}) after the back-end is killed and restarted.
 */
public final class LinuxGuest implements AutoCloseable {
    public static final Duration BOOT_BOUND = Duration.ofSeconds(120);
    public static final Duration COMMAND_BOUND = Duration.ofSeconds(180);
    public static final Duration MIGRATION_BOUND = Duration.ofSeconds(180);
    /** Kernel messages that mean an I/O error reached the guest's block or file-system layer. */
    static final Pattern IO_ERROR = Pattern.compile(
            "I/O error|blk_update_request|Buffer I/O error|critical (medium|target) error|EXT4-fs error"
                    + "|EXT4-fs warning|virtio_blk.*(error|failed)|print_req_error",
            Pattern.CASE_INSENSITIVE);

    /**
     * How QEMU is started: guest RAM, vhost-user socket reconnection
     * ({@code -chardev socket,…,reconnect=1}), queue count, extra kernel
     * arguments.
     */
    public record Options(int memoryMiB, boolean reconnect, int numQueues, String kernelArgs) {
        public static Options defaults() {
            return new Options(512, false, 1, "");
        }

        public Options withReconnect(boolean r) {
            return new Options(memoryMiB, r, numQueues, kernelArgs);
        }

        public Options withKernelArgs(String args) {
            return new Options(memoryMiB, reconnect, numQueues, args);
        }
    }

    private final GuestEnvironment env;
    private final Options options;
    private final Path logDir;
    private final Path sockDir;
    private QemuMachine machine;
    private int generation;
    private final List<QemuMachine> past = new ArrayList<>();
    private List<VhostUserBackend> diagnosisBackends = List.of();
    private JsonNode lastMigrationInfo;

    private LinuxGuest(GuestEnvironment env, Options options, Path logDir, Path sockDir) {
        this.env = env;
        this.options = options;
        this.logDir = logDir;
        this.sockDir = sockDir;
    }

    /** Boots a guest on {@code backend} with default options; returns once its command loop answered. */
    public static LinuxGuest boot(GuestLogs logs, VhostUserBackend backend) throws IOException, InterruptedException {
        return boot(logs, backend.socket(), Options.defaults(), backend);
    }

    /**
     * Boots a guest whose disk is the vhost-user-blk back-end listening on
     * {@code vhostSocket}; {@code backends} are quoted when something fails.
     */
    public static LinuxGuest boot(GuestLogs logs, Path vhostSocket, Options options, VhostUserBackend... backends)
            throws IOException, InterruptedException {
        GuestEnvironment env = GuestEnvironment.require();
        LinuxGuest g = new LinuxGuest(env, options, logs.dir(), logs.sockets());
        g.diagnosisBackends = List.of(backends);
        try {
            g.machine = QemuMachine.start("qemu" + g.generation, env, options, vhostSocket, g.sockDir, g.logDir, false);
            String ready = g.machine.shell.awaitReady(BOOT_BOUND, g::describe);
            logs.note("booted: " + ready);
            return g;
        } catch (IOException | InterruptedException | RuntimeException | Error e) {
            g.close();
            throw e;
        }
    }


    /** The source's {@code query-migrate} at the end of the last migration (RAM statistics, timings). */
    public JsonNode lastMigrationInfo() {
        return lastMigrationInfo;
    }

    /** Runs one shell command line (no newlines; it must not {@code exit}) within {@link #COMMAND_BOUND}. */
    public GuestResult run(String command) throws IOException, InterruptedException {
        return run(command, COMMAND_BOUND);
    }

    public GuestResult run(String command, Duration bound) throws IOException, InterruptedException {
        return machine.shell.run(command, bound, this::describe);
    }

    /** Runs a command that must succeed; returns its output. */
    public String check(String command) throws IOException, InterruptedException {
        GuestResult r = run(command);
        if (!r.ok()) {
            fail("guest command failed:\n" + r + "\n" + describe());
        }
        return r.output();
    }

    /**
     * Starts {@code command} in the background of the guest's shell, its
     * output to {@code /tmp/NAME.log}; {@link #awaitBackground} collects it.
     */
    public void startBackground(String name, String command) throws IOException, InterruptedException {
        check("( " + command + " ) >/tmp/" + name + ".log 2>&1 & bg_" + name + "=$!");
    }

    /** Waits (bounded) for a background job to end; returns its exit status and its output. */
    public GuestResult awaitBackground(String name, Duration bound) throws IOException, InterruptedException {
        GuestResult w = run("wait $bg_" + name + "; st=$?; cat /tmp/" + name + ".log; (exit $st)", bound);
        return new GuestResult("(background " + name + ")", w.status(), w.output());
    }

    /** The guest kernel's messages that report an I/O error (dmesg), empty when there are none. */
    public List<String> ioErrors() throws IOException, InterruptedException {
        List<String> bad = new ArrayList<>();
        for (String l : check("dmesg").split("\n")) {
            if (IO_ERROR.matcher(l).find()) {
                bad.add(l);
            }
        }
        return bad;
    }

    /** The size of /dev/vda as the guest's block layer sees it, in 512-byte sectors. */
    public long diskSectors() throws IOException, InterruptedException {
        return Long.parseLong(check("cat /sys/block/vda/size").trim());
    }

    /**
     * Waits, in the guest, for a kernel message matching the extended
     * regular expression {@code regex} (already logged or still to come: it
     * reads /dev/kmsg, which blocks for the next message), and returns it.
     */
    public String awaitKernelMessage(String regex, Duration bound) throws IOException, InterruptedException {
        if (regex.contains("'")) {
            throw new IllegalArgumentException("no single quotes in the pattern: " + regex);
        }
        GuestResult r = run("timeout " + Math.max(1, bound.toSeconds()) + " grep -m1 -E '" + regex + "' /dev/kmsg",
                bound.plusSeconds(30));
        if (!r.ok()) {
            fail("no kernel message matching /" + regex + "/ within " + bound + ":\n" + r + "\n" + describe());
        }
        return r.output().strip();
    }

    /** QMP of the QEMU the guest runs in now. */
    public QmpClient qmp() {
        return machine.qmp;
    }

    /** QEMU's process, e.g. to check it is still alive after its back-end died. */
    public ProcessHandle qemu() {
        return machine.process.toHandle();
    }

    /** The guest console so far (ttyS0: the kernel's messages), for assertions and diagnosis. */
    public ProcessLog console() {
        return machine.console;
    }

    /**
     * Live-migrates the running guest to a new QEMU whose disk is the
     * back-end on {@code destinationSocket} (QEMU's migration over a UNIX
     * socket: the destination is started with {@code -incoming defer} and
     * {@code migrate-incoming}, the source runs {@code migrate} with MIGRATION
     * events on). Returns once the source reported {@code completed} and the
     * destination resumed the guest; the source QEMU is then quit, and every
     * later command runs on the destination. Background jobs in the guest
     * keep running across it; no command may be in progress.
     */
    public Migration migrateTo(Path destinationSocket) throws IOException, InterruptedException {
        QemuMachine src = machine;
        QemuMachine dst = QemuMachine.start("qemu" + ++generation, env, options, destinationSocket, sockDir, logDir,
                true);
        long t0 = System.nanoTime();
        Path uri = sockDir.resolve("migration-" + generation + ".sock");
        try {
            dst.qmp.execute("migrate-incoming", Map.of("uri", "unix:" + uri));
            src.qmp.execute("migrate-set-capabilities",
                    Map.of("capabilities", List.of(Map.of("capability", "events", "state", true))));
            // QEMU's default 32 MiB/s would take a while for 512 MiB of TCG guest RAM; a local socket takes more
            src.qmp.execute("migrate-set-parameters", Map.of("max-bandwidth", 4L << 30));
            src.qmp.execute("migrate", Map.of("uri", "unix:" + uri));
            JsonNode end = src.qmp.awaitEvent("MIGRATION",
                    d -> List.of("completed", "failed", "cancelled").contains(d.path("status").asText()),
                    MIGRATION_BOUND);
            String status = end.path("data").path("status").asText();
            if (!status.equals("completed")) {
                fail("migration " + src.name + " -> " + dst.name + " ended " + status + ": "
                        + src.qmp.execute("query-migrate") + "\n" + describe() + "\n--- destination ---\n"
                        + dst.output.tail(30));
            }
            JsonNode info = src.qmp.execute("query-migrate");
            lastMigrationInfo = info;
            dst.qmp.awaitEvent("RESUME", d -> true, MIGRATION_BOUND);
            double seconds = (System.nanoTime() - t0) / 1e9;
            JsonNode running = dst.qmp.execute("query-status");
            assertEquals("running", running.path("status").asText(), "destination after migration: " + running);
            machine = dst;
            past.add(src);
            src.quit();
            return new Migration(seconds, info.path("total-time").asLong(), info.path("downtime").asLong(),
                    info.path("ram").path("transferred").asLong());
        } catch (IOException | InterruptedException | RuntimeException | Error e) {
            if (machine != dst) {
                dst.close();
            }
            throw e;
        }
    }

    /** What a migration took: wall time seen by the test, and QEMU's own total time, downtime and bytes sent. */
    public record Migration(double seconds, long totalTimeMs, long downtimeMs, long ramBytes) {
    }

    /** For failure messages: where the logs are, and the end of the console and of each back-end's log. */
    public String describe() {
        StringBuilder b = new StringBuilder("logs: " + logDir + "\n");
        if (machine != null) {
            b.append("--- ").append(machine.name).append(" console (last lines) ---\n")
                    .append(machine.console.tail(25)).append("\n--- ").append(machine.name)
                    .append(" output ---\n").append(machine.output.tail(15)).append('\n');
        }
        for (VhostUserBackend be : diagnosisBackends) {
            b.append(be.describe()).append('\n');
        }
        return b.toString();
    }

    /** Kills QEMU (the guest has nothing to save); the back-ends are the test's to close. */
    @Override
    public void close() {
        if (machine != null) {
            machine.close();
        }
        past.forEach(QemuMachine::close);
    }
}
