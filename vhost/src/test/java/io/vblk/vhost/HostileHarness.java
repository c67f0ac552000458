package io.vblk.vhost;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.virtio.blk.VirtioBlkAbi;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A {@code vblk serve} back-end (in-process, over a real socket) for the
 * hostile-front-end tests, with what every case checks afterwards: the fault
 * was named (the refusal or disconnect event carries the same text as the log
 * line), the next front-end is served a correct read, and the image holds
 * exactly what it held before.
 */
final class HostileHarness implements AutoCloseable {
    static final Duration BOUND = Duration.ofSeconds(30);
    static final int NEED = VhostUserProtocol.VERSION | VhostUserProtocol.FLAG_NEED_REPLY;

    final Path sock;
    final Path image;
    final RecordingEvents events = new RecordingEvents();
    final VhostUserBlkServer server;
    private final byte[] before;

    HostileHarness(Path dir, boolean readOnly) throws IOException {
        this(dir, readOnly, true);
    }

    /**
     * With {@code recordEvents} false the back-end's events are not kept
     * ({@link #events} stays empty): for the fuzzer, whose millions of refusals
     * would otherwise all stay in memory (a live heap growing by about 1 MB/s
     * and ever longer GC pauses over a 10-minute run).
     */
    HostileHarness(Path dir, boolean readOnly, boolean recordEvents) throws IOException {
        sock = dir.resolve("s.sock");
        image = patterned(dir.resolve("d.raw"));
        before = Files.readAllBytes(image);
        server = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(sock, image, "raw").withReadOnly(readOnly),
                VhostUserBlkServer.DEFAULT_OPENER, recordEvents ? events : VhostUserEvents.NONE);
    }

    /** A raw image of 1 MiB whose sector s starts with 0xABC00000 + s. */
    static Path patterned(Path p) throws IOException {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
            for (int s = 0; s < 2048; s++) {
                b.clear();
                b.putLong(0, 0xABC00000L + s);
                ch.write(b, 512L * s);
            }
        }
        return p;
    }

    /** A connection that speaks raw messages. */
    UnixSocket raw() {
        UnixSocket s = UnixSocket.connect(sock);
        s.setTimeouts(BOUND, BOUND);
        return s;
    }

    static VhostUserMsg ask(UnixSocket s, VhostUserMsg m) {
        m.write(s);
        return VhostUserMsg.read(s);
    }

    /** Asks and expects a REPLY_ACK of {@code expected} (0 done, 1 refused). */
    static void assertAck(long expected, UnixSocket s, VhostUserMsg m) {
        VhostUserMsg reply = ask(s, m);
        assertNotNull(reply, m + ": the back-end closed the connection instead of answering");
        assertTrue(reply.isReply(), reply.toString());
        assertEquals(8, reply.size(), reply.toString());
        assertEquals(expected, reply.u64(), m + " -> " + reply);
    }

    /** GET_FEATURES, GET/SET_PROTOCOL_FEATURES (REPLY_ACK), SET_OWNER, on a raw connection. */
    static void negotiate(UnixSocket s) {
        ask(s, VhostUserMsg.of(VhostUserProtocol.GET_FEATURES, VhostUserProtocol.VERSION));
        ask(s, VhostUserMsg.of(VhostUserProtocol.GET_PROTOCOL_FEATURES, VhostUserProtocol.VERSION));
        assertAck(0, s, VhostUserMsg.ofU64(VhostUserProtocol.SET_PROTOCOL_FEATURES, NEED,
                VhostUserBlkFrontend.WANTED_PROTOCOL_FEATURES));
        assertAck(0, s, VhostUserMsg.of(VhostUserProtocol.SET_OWNER, NEED));
    }

    /** The fault was refused with a message containing {@code fragment}. */
    String refused(String fragment) throws InterruptedException {
        return events.await("refused", fragment);
    }

    /** The connection ended with a reason containing {@code fragment}. */
    String dropped(String fragment) throws InterruptedException {
        return events.await("disconnected", fragment);
    }

    /**
     * A well-behaved front-end connects after the hostile one and reads
     * sectors 5 and 1000 correctly (the server was neither wedged nor left in a
     * state of the previous connection).
     */
    void servesNext() throws InterruptedException {
        try (TestFrontend fe = new TestFrontend(sock)) {
            fe.negotiate();
            fe.addMemory();
            fe.startRing(0, 0);
            fe.submit(0, VirtioBlkAbi.T_IN, 5);
            assertTrue(fe.awaitCall(BOUND), "the next front-end's request completed");
            assertEquals(0, fe.status(0));
            assertEquals(0xABC00005L, fe.data(0));
            fe.submit(1, VirtioBlkAbi.T_IN, 1000);
            assertTrue(fe.awaitCall(BOUND));
            assertEquals(0xABC00000L + 1000, fe.data(1));
        }
        events.await("disconnected", "");
    }

    void assertImageUnchanged() throws IOException {
        assertArrayEquals(before, Files.readAllBytes(image), "the image changed");
    }

    /** Every check after a case: next front-end served, image intact, no failure in the main loop. */
    void assertStillServingAndIntact() throws Exception {
        servesNext();
        assertImageUnchanged();
        assertTrue(server.mainLoop().failures().isEmpty(), server.mainLoop().failures().toString());
    }

    static long mappings() throws IOException {
        return Files.readAllLines(Path.of("/proc/self/maps")).size();
    }

    @Override
    public void close() {
        server.close();
    }

    /** The back-end's events, as {@code vblk serve} prints them. */
    static final class RecordingEvents implements VhostUserEvents {
        final LinkedBlockingQueue<String> q = new LinkedBlockingQueue<>();

        @Override
        public void connected(int pid) {
            q.add("connected");
        }

        @Override
        public void disconnected(String why) {
            q.add("disconnected: " + why);
        }

        @Override
        public void ringsStarted(List<Integer> rings) {
            q.add("started " + rings);
        }

        @Override
        public void ringsStopped(List<Integer> rings) {
            q.add("stopped " + rings);
        }

        @Override
        public void refused(String request, String why) {
            q.add("refused " + request + ": " + why);
        }

        /** The next event starting with {@code prefix} (others are skipped). */
        String await(String prefix) throws InterruptedException {
            return await(prefix, "");
        }

        /** The next event starting with {@code prefix} and containing {@code fragment} (others are skipped). */
        String await(String prefix, String fragment) throws InterruptedException {
            long deadline = System.nanoTime() + BOUND.toNanos();
            StringBuilder seen = new StringBuilder();
            for (;;) {
                String e = q.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (e == null) {
                    throw new AssertionError("no back-end event '" + prefix + "..." + fragment + "' within " + BOUND
                            + "; saw:" + seen);
                }
                if (e.startsWith(prefix) && e.contains(fragment)) {
                    return e;
                }
                seen.append("\n  ").append(e);
            }
        }
    }
}
