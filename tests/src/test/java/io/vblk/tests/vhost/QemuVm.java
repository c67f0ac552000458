package io.vblk.tests.vhost;

import java.io.IOException;
import java.nio.channels.ServerSocketChannel;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * One QEMU booting SeaBIOS from a vhost-user-blk disk, started with exactly
 * the command line of issue 10:
 * {@code -object memory-backend-memfd,id=mem,size=128M,share=on -machine
 * q35,memory-backend=mem -accel tcg -chardev socket,id=c0,path=SOCK -device
 * vhost-user-blk-pci,chardev=c0,bootindex=0 -nodefaults -display none
 * -serial file:LOG}, plus {@code -qmp unix:QMP} for control. Closing it kills
 * the process.
 */
final class QemuVm implements AutoCloseable {
    final String name;
    final Process process;
    final SerialLog serial;
    final Qmp qmp;
    final Path output;

    private QemuVm(String name, Process process, SerialLog serial, Qmp qmp, Path output) {
        this.name = name;
        this.process = process;
        this.serial = serial;
        this.qmp = qmp;
        this.output = output;
    }

    static List<String> commandLine(Path qemu, Path vhostSocket, Path serialLog, Path qmpSocket) {
        return List.of(qemu.toString(),
                "-object", "memory-backend-memfd,id=mem,size=128M,share=on",
                "-machine", "q35,memory-backend=mem",
                "-accel", "tcg",
                "-chardev", "socket,id=c0,path=" + vhostSocket,
                "-device", "vhost-user-blk-pci,chardev=c0,bootindex=0",
                "-nodefaults",
                "-display", "none",
                "-serial", "file:" + serialLog,
                "-qmp", "unix:" + qmpSocket);
    }

    static QemuVm start(Path dir, String name, Path vhostSocket) throws IOException {
        Path qemu = Tools.qemu();
        Path log = dir.resolve(name + "-serial.log");
        Path qmpSock = dir.resolve(name + "-qmp.sock");
        Path out = dir.resolve(name + ".out");
        Process p = null;
        try (ServerSocketChannel listen = Qmp.listen(qmpSock)) {
            p = new ProcessBuilder(commandLine(qemu, vhostSocket, log, qmpSock)).redirectErrorStream(true)
                    .redirectOutput(out.toFile()).start();
            Qmp q = Qmp.accept(listen, name, p, Duration.ofSeconds(60), out);
            return new QemuVm(name, p, new SerialLog(log), q, out);
        } catch (IOException | RuntimeException | Error e) {
            Tools.kill(p);
            throw e;
        }
    }

    /** What QEMU printed on stdout/stderr, and the QMP transcript. */
    String report() {
        return "--- " + name + " output ---\n" + Tools.read(output) + "\n--- " + name + " QMP ---\n" + qmp.transcript();
    }

    /** kill -9. */
    void sigkill() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor();
    }

    @Override
    public void close() {
        try {
            qmp.close();
        } catch (IOException e) {
            // the process is killed next anyway
        }
        Tools.kill(process);
    }
}
