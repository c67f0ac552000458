package io.vblk.dataplane;

import static io.vblk.virtio.blk.VirtioBlkAbi.SECTOR;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicIntegerArray;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import io.vblk.dataplane.BlkMachine.Serving;
import io.vblk.dataplane.BlkMachine.Spec;
import io.vblk.testkit.BlkDriver.Layout;
import io.vblk.testkit.BlkDriver.Req;
import io.vblk.testkit.BlkDriver;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * 10,000 random valid requests over 4 queues against a reference model of
 * the disk ({@link DiskModel}), with the device initialised as Linux does
 * (MSI-X, MQ, EVENT_IDX, INDIRECT_DESC) and each queue driven by its own
 * guest thread (a vCPU) keeping up to 8 requests in flight. Types: IN, OUT,
 * FLUSH, GET_ID, DISCARD, WRITE_ZEROES with and without UNMAP; 1 to 128
 * sectors anywhere on an 8 MiB file-backed raw disk; random layouts (header
 * split in two, data in up to 4 pieces at random cut points, status byte
 * alone or behind the data, indirect tables). Requests in flight never
 * overlap when one of them changes the disk, so every result is exact: each
 * read's data is compared with the model when it completes, every status
 * must be OK with the right used length, completions arrive by interrupt,
 * and at the end the image file must equal the model. Runs with the queues
 * served from the main loop, from one IOThread, and split over two IOThreads
 * with the backend in one of them (requests and completions crossing).
 * The seed is printed; {@code -Dvblk.random.seed=N} replays one.
 */
@Tag("concurrency")
class VirtioBlkRandomTest {
    static final int QUEUES = 4;
    static final int REQUESTS = 10_000;
    static final int DEPTH = 8;
    static final String SERIAL = "vblk-random-serial";

    @TempDir
    Path dir;

    @ParameterizedTest
    @EnumSource(Serving.class)
    void tenThousandRandomRequestsOverFourQueuesMatchTheModel(Serving serving) throws Exception {
        long seed = Long.getLong("vblk.random.seed", 0x5eed_0004L);
        System.out.println("VirtioBlkRandomTest " + serving + " seed " + seed);
        try (BlkMachine m = new BlkMachine(new Spec().serving(serving).queues(QUEUES).queueSize(128)
                .diskBytes(8L << 20).serial(SERIAL).seed(seed), dir)) {
            BlkDriver g = m.newDriver();
            g.initLinux(BlkDriver.LINUX_FEATURES);
            assertEquals(QUEUES, g.vqs.length);
            DiskModel model = new DiskModel(m.initialContent);
            AtomicIntegerArray perType = new AtomicIntegerArray(16);
            List<CompletableFuture<Integer>> vcpus = new ArrayList<>();
            for (int q = 0; q < QUEUES; q++) {
                int queue = q;
                CompletableFuture<Integer> f = new CompletableFuture<>();
                Thread t = new Thread(() -> {
                    try {
                        f.complete(new Vcpu(g, model, queue, seed, REQUESTS / QUEUES, perType).run());
                    } catch (Throwable e) {
                        f.completeExceptionally(e);
                    }
                }, "vcpu" + q);
                t.start();
                vcpus.add(f);
            }
            int total = 0;
            for (CompletableFuture<Integer> f : vcpus) {
                try {
                    total += m.loop.watchdog(java.time.Duration.ofSeconds(120)).await("a vCPU's random requests", f);
                } catch (RuntimeException | AssertionError e) {
                    throw new AssertionError("seed " + seed + " (" + serving + "): " + e, e);
                }
            }
            assertEquals(REQUESTS, total);
            assertNull(model.checkDisk(m.disk()), "seed " + seed + ": the image file differs from the model");
            assertFalse(g.pci.needsReset());
            System.out.println("VirtioBlkRandomTest " + serving + " requests by type: IN " + perType.get(0) + ", OUT "
                    + perType.get(1) + ", FLUSH " + perType.get(4) + ", GET_ID " + perType.get(8) + ", DISCARD "
                    + perType.get(11) + ", WRITE_ZEROES " + perType.get(13));
            for (int type : new int[] {0, 1, 4, 8, 11, 13}) {
                if (perType.get(type) == 0) {
                    throw new AssertionError("no request of type " + type + " was made");
                }
            }
        }
    }

    /** One guest thread driving one queue. */
    static final class Vcpu {
        final BlkDriver g;
        final DiskModel model;
        final int q;
        final Random r;
        final int count;
        final AtomicIntegerArray perType;
        final long seed;
        final ArrayDeque<Integer> freeSlots = new ArrayDeque<>();
        final List<Pending> inflight = new ArrayList<>();

        /** A request in flight and what it expects. */
        record Pending(Req req, int slot, long sector, long sectors, boolean reserved, byte[] data, int idBytes) {
        }

        Vcpu(BlkDriver g, DiskModel model, int q, long seed, int count, AtomicIntegerArray perType) {
            this.g = g;
            this.model = model;
            this.q = q;
            this.seed = seed;
            this.r = new Random(seed * 31 + q);
            this.count = count;
            this.perType = perType;
            for (int s = 0; s < DEPTH; s++) {
                freeSlots.add(s);
            }
        }

        int run() {
            int submitted = 0;
            int completed = 0;
            while (completed < count) {
                List<Req> batch = new ArrayList<>();
                int want = 1 + r.nextInt(4);
                while (submitted < count && !freeSlots.isEmpty() && batch.size() < want) {
                    Pending p = next(freeSlots.peek());
                    if (p == null) {
                        break; // the range is busy on another queue: complete something first
                    }
                    freeSlots.poll();
                    inflight.add(p);
                    batch.add(p.req);
                    submitted++;
                }
                if (!batch.isEmpty()) {
                    g.submit(batch.toArray(new Req[0]));
                }
                boolean mustWait = freeSlots.isEmpty() || submitted == count || batch.isEmpty();
                if (!g.reap(q) && mustWait && !inflight.isEmpty()) {
                    g.waitForUsed(q, inflight.size() + " requests in flight on vq" + q);
                    g.reap(q);
                }
                for (int i = 0; i < inflight.size(); i++) {
                    Pending p = inflight.get(i);
                    if (p.req.done()) {
                        check(p);
                        inflight.remove(i--);
                        freeSlots.add(p.slot);
                        completed++;
                    }
                }
                if (inflight.isEmpty() && batch.isEmpty() && submitted < count) {
                    Thread.onSpinWait(); // every range we drew was busy elsewhere; draw again
                }
            }
            return completed;
        }

        /** Draws a request; null if its range is busy. */
        Pending next(int slot) {
            int pick = r.nextInt(100);
            long cap = model.sectors();
            long n = r.nextInt(10) == 0 ? 1 + r.nextInt(128) : 1 + r.nextInt(16);
            long sector = (long) (r.nextDouble() * (cap - n + 1));
            Layout layout = Layout.random(r, true);
            if (pick < 40) {
                if (!model.tryReserve(sector, n, false)) {
                    return null;
                }
                return new Pending(g.read(q, slot, sector, (int) n * SECTOR, layout, r), slot, sector, n, true, null, 0);
            }
            if (pick < 75) {
                if (!model.tryReserve(sector, n, true)) {
                    return null;
                }
                byte[] data = new byte[(int) n * SECTOR];
                r.nextBytes(data);
                return new Pending(g.write(q, slot, sector, data, layout, r), slot, sector, n, true, data, 0);
            }
            if (pick < 80) {
                return new Pending(g.flush(q, slot), slot, 0, 0, false, null, 0);
            }
            if (pick < 84) {
                int bytes = 1 + r.nextInt(28);
                return new Pending(g.getId(q, slot, bytes), slot, 0, 0, false, null, bytes);
            }
            int type = pick < 90 ? VirtioBlkAbi.T_DISCARD : VirtioBlkAbi.T_WRITE_ZEROES;
            int flags = type == VirtioBlkAbi.T_WRITE_ZEROES && r.nextBoolean() ? VirtioBlkAbi.WZ_FLAG_UNMAP : 0;
            if (!model.tryReserve(sector, n, true)) {
                return null;
            }
            return new Pending(g.discardOrZeroes(q, slot, type, sector, n, flags), slot, sector, n, true, null, 0);
        }

        void check(Pending p) {
            Req req = p.req;
            String what = "seed " + seed + " vq" + q + " " + req + " (" + p.sectors + " sectors)";
            perType.incrementAndGet(req.type);
            assertEquals(VirtioBlkAbi.S_OK, req.status(), what + ": status");
            switch (req.type) {
                case VirtioBlkAbi.T_IN -> {
                    assertEquals((int) p.sectors * SECTOR + 1, req.used.len(), what + ": used length");
                    String bad = model.checkRead(p.sector, req.in());
                    if (bad != null) {
                        throw new AssertionError(what + ": " + bad);
                    }
                }
                case VirtioBlkAbi.T_OUT -> {
                    assertEquals(1, req.used.len(), what);
                    model.write(p.sector, p.data);
                }
                case VirtioBlkAbi.T_DISCARD -> {
                    assertEquals(1, req.used.len(), what);
                    model.discard(p.sector, p.sectors);
                }
                case VirtioBlkAbi.T_WRITE_ZEROES -> {
                    assertEquals(1, req.used.len(), what);
                    model.zero(p.sector, p.sectors);
                }
                case VirtioBlkAbi.T_GET_ID -> {
                    int n = Math.min(VirtioBlkAbi.SERIAL_BYTES, p.idBytes);
                    assertEquals(n + 1, req.used.len(), what);
                    byte[] id = Arrays.copyOf(SERIAL.getBytes(StandardCharsets.US_ASCII), VirtioBlkAbi.SERIAL_BYTES);
                    byte[] got = req.in();
                    if (!Arrays.equals(Arrays.copyOf(id, n), Arrays.copyOf(got, n))) {
                        throw new AssertionError(what + ": id " + Arrays.toString(got));
                    }
                }
                default -> assertEquals(1, req.used.len(), what);
            }
            if (p.reserved) {
                model.release(p.sector, p.sectors);
            }
        }
    }
}
