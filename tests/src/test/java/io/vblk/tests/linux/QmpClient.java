package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.function.Predicate;
import java.util.function.Supplier;

/**
 * A client of the QEMU Machine Protocol (QMP) for one QEMU or
 * qemu-storage-daemon: the process connects to a socket the test listens on
 * ({@code -qmp unix:PATH}, or {@code --chardev socket,path=PATH --monitor
 * chardev=…}), the client reads the greeting and negotiates capabilities.
 * Commands carry an {@code id}, so their reply is found among the
 * asynchronous events QEMU sends in between; events are kept until a test
 * waits for them. Every message in both directions goes to a transcript file.
 */
public final class QmpClient implements AutoCloseable {
    static final Duration REPLY_BOUND = Duration.ofSeconds(60);
    private static final ObjectMapper JSON = new ObjectMapper();

    private final String name;
    private final SocketChannel channel;
    private final Writer transcript;
    private final Path transcriptFile;
    private final Map<String, JsonNode> replies = new HashMap<>();
    private final List<JsonNode> events = new ArrayList<>();
    private JsonNode greeting;
    private boolean ended;
    private int nextId;

    private QmpClient(String name, SocketChannel channel, Path transcriptFile) throws IOException {
        this.name = name;
        this.channel = channel;
        this.transcriptFile = transcriptFile;
        this.transcript = Files.newBufferedWriter(transcriptFile, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND);
        Thread t = new Thread(this::readLoop, name + "-qmp");
        t.setDaemon(true);
        t.start();
    }

    /** Accepts the process's connection on {@code listener}, reads the greeting and enters command mode. */
    static QmpClient connect(String name, UnixListener listener, ProcessHandle peer, Duration bound,
            Path transcriptFile, Supplier<String> diagnosis) throws IOException, InterruptedException {
        SocketChannel ch = listener.accept(name + " QMP", peer, bound, diagnosis);
        QmpClient q = new QmpClient(name, ch, transcriptFile);
        synchronized (q) {
            long deadline = System.nanoTime() + bound.toNanos();
            while (q.greeting == null) {
                q.waitUntil(deadline, "the QMP greeting", diagnosis);
            }
        }
        q.execute("qmp_capabilities");
        return q;
    }

    /**
     * Connects to a process that listens for QMP on {@code socket}
     * ({@code server=on}, as {@code vblk daemon}'s monitor does), reads the
     * greeting and enters command mode.
     */
    static QmpClient connectTo(String name, Path socket, Duration bound, Path transcriptFile,
            Supplier<String> diagnosis) throws IOException, InterruptedException {
        SocketChannel ch = SocketChannel.open(java.net.UnixDomainSocketAddress.of(socket));
        QmpClient q = new QmpClient(name, ch, transcriptFile);
        synchronized (q) {
            long deadline = System.nanoTime() + bound.toNanos();
            while (q.greeting == null) {
                q.waitUntil(deadline, "the QMP greeting", diagnosis);
            }
        }
        q.execute("qmp_capabilities");
        return q;
    }

    private void readLoop() {
        try (BufferedReader r = new BufferedReader(new InputStreamReader(Channels.newInputStream(channel),
                StandardCharsets.UTF_8))) {
            String line;
            while ((line = r.readLine()) != null) {
                log("<- " + line);
                if (line.isBlank()) {
                    continue;
                }
                JsonNode msg = JSON.readTree(line);
                synchronized (this) {
                    if (msg.has("QMP")) {
                        greeting = msg;
                    } else if (msg.has("event")) {
                        events.add(msg);
                    } else if (msg.has("id")) {
                        replies.put(msg.get("id").asText(), msg);
                    }
                    notifyAll();
                }
            }
        } catch (IOException e) {
            log("(" + e + ")");
        } finally {
            synchronized (this) {
                ended = true;
                notifyAll();
            }
        }
    }

    private void log(String s) {
        synchronized (transcript) {
            try {
                transcript.write(s);
                transcript.write('\n');
                transcript.flush();
            } catch (IOException e) {
                // the transcript is a diagnosis aid; a closed one must not fail the command
            }
        }
    }

    private void waitUntil(long deadline, String what, Supplier<String> diagnosis) throws InterruptedException {
        if (ended) {
            fail(name + ": the QMP connection closed while waiting for " + what + "\n" + diagnosis.get());
        }
        long left = deadline - System.nanoTime();
        if (left <= 0) {
            fail(name + ": no " + what + " on QMP in time; transcript " + transcriptFile + "\n" + diagnosis.get());
        }
        wait(Math.max(1, left / 1_000_000));
    }

    /** Runs a command without arguments; see {@link #execute(String, Map)}. */
    public JsonNode execute(String command) throws IOException, InterruptedException {
        return execute(command, Map.of());
    }

    /**
     * Runs {@code command} with {@code arguments} (values are turned into
     * JSON by Jackson) and returns its {@code return} value; an {@code error}
     * reply fails the test with QEMU's description.
     */
    public JsonNode execute(String command, Map<String, ?> arguments) throws IOException, InterruptedException {
        JsonNode reply = send(command, arguments);
        if (reply.has("error")) {
            fail(name + ": QMP " + command + " " + arguments + " failed: " + reply.get("error"));
        }
        return reply.get("return");
    }

    /** Runs {@code command} and returns the whole reply, {@code error} included: for tests that expect a refusal. */
    public JsonNode send(String command, Map<String, ?> arguments) throws IOException, InterruptedException {
        String id;
        synchronized (this) {
            id = name + "-" + nextId++;
        }
        ObjectNode msg = JSON.createObjectNode();
        msg.put("execute", command);
        if (!arguments.isEmpty()) {
            msg.set("arguments", JSON.valueToTree(arguments));
        }
        msg.put("id", id);
        String line = JSON.writeValueAsString(msg);
        log("-> " + line);
        ByteBuffer b = ByteBuffer.wrap((line + "\n").getBytes(StandardCharsets.UTF_8));
        synchronized (channel) {
            while (b.hasRemaining()) {
                channel.write(b);
            }
        }
        long deadline = System.nanoTime() + REPLY_BOUND.toNanos();
        synchronized (this) {
            while (!replies.containsKey(id)) {
                waitUntil(deadline, "reply to " + command, () -> "");
            }
            return replies.remove(id);
        }
    }

    /**
     * Waits for an event named {@code event} whose {@code data} satisfies
     * {@code data} — among those already received and not yet taken, oldest
     * first — and takes it. Other events stay for later waits.
     */
    public JsonNode awaitEvent(String event, Predicate<JsonNode> data, Duration bound) throws InterruptedException {
        long deadline = System.nanoTime() + bound.toNanos();
        synchronized (this) {
            for (;;) {
                for (Iterator<JsonNode> it = events.iterator(); it.hasNext();) {
                    JsonNode e = it.next();
                    if (e.get("event").asText().equals(event) && data.test(e.path("data"))) {
                        it.remove();
                        return e;
                    }
                }
                waitUntil(deadline, "event " + event, () -> "events so far: " + events);
            }
        }
    }

    public Path transcript() {
        return transcriptFile;
    }

    @Override
    public void close() throws IOException {
        channel.close();
        synchronized (transcript) {
            transcript.close();
        }
    }
}
