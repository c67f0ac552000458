package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The guest's command port: its second serial port (ttyS1, QEMU {@code
 * -serial chardev:…} on a socket the test listens on), on which the
 * initramfs's command loop ({@code vblk-cmdloop}) reads one command per line
 * — {@code ID COMMAND} — runs it, and ends its output with
 * {@code @@VBLK-END ID STATUS@@}. The loop announces itself with
 * {@code @@VBLK-READY …@@} when it starts (at boot, or again if a command
 * killed it). The kernel's console is on ttyS0, so its messages never mix
 * with a command's output. Everything read is appended to a transcript file.
 */
final class GuestShell implements AutoCloseable {
    static final String READY = "@@VBLK-READY";
    private static final Pattern END = Pattern.compile("@@VBLK-END (\\S+) (\\d+)@@");

    private final String name;
    private final SocketChannel channel;
    private final OutputStream transcript;
    private final List<String> lines = new ArrayList<>();
    private final ByteArrayOutputStream partial = new ByteArrayOutputStream();
    private final String nonce = Long.toHexString(System.nanoTime() & 0xffffff);
    private int consumed;
    private int nextId;
    private boolean ended;

    private GuestShell(String name, SocketChannel channel, Path transcriptFile) throws IOException {
        this.name = name;
        this.channel = channel;
        this.transcript = Files.newOutputStream(transcriptFile, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        Thread t = new Thread(this::readLoop, name + "-ttyS1");
        t.setDaemon(true);
        t.start();
    }

    static GuestShell accept(String name, UnixListener listener, ProcessHandle qemu, Duration bound,
            Path transcriptFile, Supplier<String> diagnosis) throws IOException {
        return new GuestShell(name, listener.accept(name + " serial port ttyS1", qemu, bound, diagnosis),
                transcriptFile);
    }

    private void readLoop() {
        byte[] buf = new byte[8192];
        try (InputStream in = Channels.newInputStream(channel)) {
            int n;
            while ((n = in.read(buf)) > 0) {
                synchronized (transcript) {
                    transcript.write(buf, 0, n);
                    transcript.flush();
                }
                synchronized (this) {
                    for (int i = 0; i < n; i++) {
                        if (buf[i] == '\n') {
                            lines.add(partial.toString(StandardCharsets.UTF_8).replace("\r", ""));
                            partial.reset();
                        } else {
                            partial.write(buf[i]);
                        }
                    }
                    notifyAll();
                }
            }
        } catch (IOException e) {
            // the connection ends with its QEMU; the waiters below say so
        } finally {
            synchronized (this) {
                ended = true;
                notifyAll();
            }
        }
    }

    /** Waits for the command loop's ready line; returns it (it names the kernel). */
    synchronized String awaitReady(Duration bound, Supplier<String> diagnosis) throws InterruptedException {
        long deadline = System.nanoTime() + bound.toNanos();
        for (;;) {
            while (consumed < lines.size()) {
                String l = lines.get(consumed++);
                if (l.contains(READY)) {
                    return l;
                }
            }
            waitForInput(deadline, "the guest's command loop to start (" + READY + ")", bound, diagnosis);
        }
    }

    private void waitForInput(long deadline, String what, Duration bound, Supplier<String> diagnosis)
            throws InterruptedException {
        if (ended) {
            fail(name + ": the serial connection closed while waiting for " + what + "\n" + diagnosis.get());
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            fail(name + ": waited " + bound + " for " + what + "\n" + diagnosis.get());
        }
        wait(Math.max(1, left / 1_000_000));
    }

    /**
     * Runs one command line in the guest's shell and waits, at most
     * {@code bound}, for its end marker. The command runs with {@code eval}
     * in the loop's shell (variables, the directory and background jobs
     * persist) and stdin from /dev/null; it must not {@code exit}.
     */
    GuestResult run(String command, Duration bound, Supplier<String> diagnosis)
            throws IOException, InterruptedException {
        if (command.indexOf('\n') >= 0 || command.indexOf('\r') >= 0) {
            throw new IllegalArgumentException("one line per command: " + command);
        }
        String id;
        synchronized (this) {
            id = nonce + "." + nextId++;
            consumed = lines.size();
        }
        ByteBuffer b = ByteBuffer.wrap((id + " " + command + "\n").getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) {
            channel.write(b);
        }
        long deadline = System.nanoTime() + bound.toNanos();
        StringBuilder out = new StringBuilder();
        synchronized (this) {
            for (;;) {
                while (consumed < lines.size()) {
                    String l = lines.get(consumed++);
                    Matcher m = END.matcher(l);
                    if (m.find() && m.group(1).equals(id)) {
                        out.append(l, 0, m.start());
                        return new GuestResult(command, Integer.parseInt(m.group(2)), out.toString());
                    }
                    if (l.contains(READY)) {
                        fail(name + ": the guest's command loop restarted while running '" + command
                                + "' (did it exit, or have a syntax error?); output:\n" + out + "\n" + diagnosis.get());
                    }
                    out.append(l).append('\n');
                }
                waitForInput(deadline, "the end of '" + command + "' (output so far:\n" + out + ")", bound,
                        diagnosis);
            }
        }
    }

    @Override
    public void close() throws IOException {
        channel.close();
        synchronized (transcript) {
            transcript.close();
        }
    }
}
