package io.vblk.tests.linux;

import java.io.IOException;
import java.nio.channels.Channels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * One {@code qemu-system-x86_64} process running the Linux guest: TCG (this
 * machine's /dev/kvm does not boot stock kernels), guest RAM in a shared
 * memfd (a vhost-user back-end maps it), one {@code vhost-user-blk-pci}
 * disk, the kernel's console on ttyS0 and the command loop on ttyS1, both
 * on sockets the test listens on, and QMP. A migration destination is the
 * same command line plus {@code -incoming defer}. A kernel oops panics and a
 * panic ends QEMU ({@code oops=panic panic=-1 -no-reboot}), so a crashed
 * guest fails the waiting command at once, its console saying why. Its output goes to
 * {@code NAME.log}, the console to {@code NAME-console.log}, the command
 * port's bytes to {@code NAME-ttyS1.log}, QMP to {@code NAME-qmp.log}.
 */
final class QemuMachine implements AutoCloseable {
    static final Duration CONNECT_BOUND = Duration.ofSeconds(90);
    static final Duration QUIT_BOUND = Duration.ofSeconds(30);

    final String name;
    final Process process;
    final ProcessLog output;
    final ProcessLog console;
    final QmpClient qmp;
    final GuestShell shell;

    private QemuMachine(String name, Process process, ProcessLog output, ProcessLog console, QmpClient qmp,
            GuestShell shell) {
        this.name = name;
        this.process = process;
        this.output = output;
        this.console = console;
        this.qmp = qmp;
        this.shell = shell;
    }

    static List<String> commandLine(GuestEnvironment env, LinuxGuest.Options o, Path vhostSocket, Path consoleSock,
            Path shellSock, Path qmpSock, boolean incoming) {
        List<String> cmd = new ArrayList<>(List.of(env.qemu().toString(),
                "-accel", "tcg",
                "-m", o.memoryMiB() + "M",
                "-object", "memory-backend-memfd,id=mem,size=" + o.memoryMiB() + "M,share=on",
                "-numa", "node,memdev=mem",
                "-chardev", "socket,id=vhost0,path=" + vhostSocket + (o.reconnect() ? ",reconnect=1" : ""),
                "-device", "vhost-user-blk-pci,id=vblk0,chardev=vhost0,num-queues=" + o.numQueues(),
                "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-chardev", "socket,id=console,path=" + consoleSock,
                "-serial", "chardev:console",
                "-chardev", "socket,id=shell,path=" + shellSock,
                "-serial", "chardev:shell",
                "-qmp", "unix:" + qmpSock,
                "-kernel", env.kernel().vmlinuz().toString(),
                "-initrd", env.initramfs().toString(),
                "-append", "console=ttyS0 panic=-1 oops=panic " + o.kernelArgs()));
        if (incoming) {
            cmd.addAll(List.of("-incoming", "defer"));
        }
        return cmd;
    }

    /** Starts QEMU and accepts its console, command port and QMP connections (bounded). */
    static QemuMachine start(String name, GuestEnvironment env, LinuxGuest.Options o, Path vhostSocket, Path sockDir,
            Path logDir, boolean incoming) throws IOException, InterruptedException {
        try (UnixListener consoleL = new UnixListener(sockDir.resolve(name + "-console.sock"));
             UnixListener shellL = new UnixListener(sockDir.resolve(name + "-ttyS1.sock"));
             UnixListener qmpL = new UnixListener(sockDir.resolve(name + "-qmp.sock"))) {
            List<String> cmd = commandLine(env, o, vhostSocket, consoleL.path(), shellL.path(), qmpL.path(), incoming);
            Path outFile = logDir.resolve(name + ".log");
            Files.writeString(outFile, "### " + String.join(" ", cmd) + "\n", StandardOpenOption.CREATE,
                    StandardOpenOption.APPEND);
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            try {
                ProcessLog out = ProcessLog.tee(name, p.getInputStream(), outFile);
                Supplier<String> diag = () -> "--- " + name + " output (" + outFile + ") ---\n" + out.tail(30);
                ProcessHandle h = p.toHandle();
                ProcessLog console = ProcessLog.tee(name + "-console", Channels.newInputStream(
                        consoleL.accept(name + " console ttyS0", h, CONNECT_BOUND, diag)),
                        logDir.resolve(name + "-console.log"));
                GuestShell shell = GuestShell.accept(name, shellL, h, CONNECT_BOUND, logDir.resolve(name + "-ttyS1.log"),
                        diag);
                QmpClient qmp = QmpClient.connect(name, qmpL, h, CONNECT_BOUND, logDir.resolve(name + "-qmp.log"), diag);
                return new QemuMachine(name, p, out, console, qmp, shell);
            } catch (IOException | InterruptedException | RuntimeException | Error e) {
                HostTools.kill(p.toHandle());
                throw e;
            }
        }
    }

    /** QMP {@code quit}, then waits (bounded) for the process to end; kills it if it does not. */
    void quit() {
        try {
            qmp.send("quit", Map.of());
            if (process.waitFor(QUIT_BOUND.toMillis(), TimeUnit.MILLISECONDS)) {
                return;
            }
        } catch (IOException | AssertionError e) {
            // the connection may close before the reply: the process check below decides
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        close();
    }

    @Override
    public void close() {
        try {
            qmp.close();
            shell.close();
        } catch (IOException e) {
            // the process is killed next anyway
        }
        HostTools.kill(process.toHandle());
    }
}
