package io.vblk.tests.daemon;

import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A QMP client for a storage daemon's monitor socket: reads the greeting,
 * sends raw text or commands, and keeps replies and events apart (events
 * are waited for by name, with a deadline). Works against qsd and vblk alike.
 */
final class QmpClient implements AutoCloseable {
    static final Duration BOUND = Duration.ofSeconds(180); // a one-node Ceph cluster may take seconds per write
    private static final ObjectMapper JSON = new ObjectMapper();

    private final SocketChannel ch;
    private final BlockingQueue<JsonNode> replies = new LinkedBlockingQueue<>();
    private final List<JsonNode> events = new CopyOnWriteArrayList<>();
    private final StringBuilder transcript = new StringBuilder();
    private final Thread reader;
    final JsonNode greeting;

    private QmpClient(SocketChannel ch) throws IOException {
        this.ch = ch;
        BufferedReader r = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8));
        String g = r.readLine();
        if (g == null) {
            throw new IOException("the monitor closed before its greeting");
        }
        greeting = JSON.readTree(g);
        reader = new Thread(() -> {
            try {
                String line;
                while ((line = r.readLine()) != null) {
                    synchronized (transcript) {
                        transcript.append("<- ").append(line).append('\n');
                    }
                    JsonNode n = JSON.readTree(line);
                    if (n.has("event")) {
                        synchronized (events) {
                            events.add(n);
                            events.notifyAll();
                        }
                    } else {
                        replies.add(n);
                    }
                }
            } catch (IOException e) {
                // the connection ended
            }
        }, "qmp-test-reader");
        reader.setDaemon(true);
        reader.start();
    }

    /** Connects, reads the greeting; {@code negotiate} runs qmp_capabilities. */
    static QmpClient connect(Path sock, boolean negotiate) throws IOException, InterruptedException {
        SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(sock));
        QmpClient c = new QmpClient(ch);
        if (negotiate) {
            c.ok("qmp_capabilities", null);
        }
        return c;
    }

    void sendRaw(String text) throws IOException {
        synchronized (transcript) {
            transcript.append("-> ").append(text.strip()).append('\n');
        }
        ByteBuffer b = ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    /** The next reply (a {@code return} or an {@code error}), bounded. */
    JsonNode reply() throws InterruptedException {
        JsonNode r = replies.poll(BOUND.toMillis(), TimeUnit.MILLISECONDS);
        if (r == null) {
            fail("no QMP reply within " + BOUND + "\n" + transcript());
        }
        return r;
    }

    JsonNode call(String command, String argsJson) throws IOException, InterruptedException {
        sendRaw("{\"execute\": \"" + command + "\"" + (argsJson == null ? "" : ", \"arguments\": " + argsJson) + "}\n");
        return reply();
    }

    /** Runs a command that must succeed; returns its {@code return} value. */
    JsonNode ok(String command, String argsJson) throws IOException, InterruptedException {
        JsonNode r = call(command, argsJson);
        if (!r.has("return")) {
            fail("QMP " + command + " failed: " + r + "\n" + transcript());
        }
        return r.get("return");
    }

    /** Runs a command that must fail; returns its {@code error} object. */
    JsonNode error(String command, String argsJson) throws IOException, InterruptedException {
        JsonNode r = call(command, argsJson);
        if (!r.has("error")) {
            fail("QMP " + command + " should have failed: " + r + "\n" + transcript());
        }
        return r.get("error");
    }

    /** Waits for an event named {@code name} whose data has {@code key} = {@code value}. */
    JsonNode awaitEvent(String name, String key, String value) throws InterruptedException {
        long deadline = System.nanoTime() + BOUND.toNanos();
        synchronized (events) {
            for (;;) {
                for (JsonNode e : events) {
                    if (e.path("event").asText().equals(name)
                            && (key == null || e.path("data").path(key).asText().equals(value))) {
                        return e;
                    }
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    fail("no event " + name + " within " + BOUND + "\n" + transcript());
                }
                events.wait(Math.max(1, left / 1_000_000));
            }
        }
    }

    /** The statuses of {@code JOB_STATUS_CHANGE} events of job {@code id} so far, in order. */
    List<String> jobStatuses(String id) {
        List<String> l = new java.util.ArrayList<>();
        synchronized (events) {
            for (JsonNode e : events) {
                if (e.path("event").asText().equals("JOB_STATUS_CHANGE") && e.path("data").path("id").asText().equals(id)) {
                    l.add(e.path("data").path("status").asText());
                }
            }
        }
        return l;
    }

    String transcript() {
        synchronized (transcript) {
            return transcript.toString();
        }
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
