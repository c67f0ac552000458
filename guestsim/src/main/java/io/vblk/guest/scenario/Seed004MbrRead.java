package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.LoopHold;
import io.vblk.block.BlockNode;
import io.vblk.block.NullDriver;
import io.vblk.firmware.BootVerdict;
import io.vblk.firmware.Firmware;
import io.vblk.guest.BootReport;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Seed 004 end to end: the SeaBIOS symptom. The boot disk is served by a
 * dataplane on io0; a second node also lives in io0. Just before the
 * firmware's first kick (the MBR read), the main loop moves that node to
 * the main context — a drained section in io0 followed by a context move:
 * <ol>
 * <li>drained begin disables io0's external handlers and wakes io0, which
 *     masks every external fd (the boot disk's ioeventfd too) and goes to
 *     sleep — held there, announced in notify_me, so the race is replayed,
 *     not hoped for;</li>
 * <li>drained end notifies io0 (the eventfd is written: re-arm your fds);</li>
 * <li>the move quiesces io0 with a non-blocking poll from the main thread.</li>
 * </ol>
 * Pre-fix, that poll accepts the notification and eats the eventfd: io0
 * sleeps on with the ioeventfd masked, the kick is never seen, and the
 * firmware spins on {@code used.idx} until it reports a hang at the MBR read.
 * Fixed, io0 wakes, re-arms, and the boot completes. io0 does not busy-poll
 * here (poll-max-ns 0), since a polling loop would see the notification flag
 * without the eventfd.
 */
public final class Seed004MbrRead implements Scenario {
    private static final int ATTEMPTS = 5;

    @Override
    public String id() {
        return "seed-004";
    }

    @Override
    public String title() {
        return "notify-accept-in-nonblocking-poll";
    }

    @Override
    public String upstreamCommit() {
        return "b37548fcd1";
    }

    @Override
    public String summary() {
        return "aio_notify_accept in a non-blocking aio_poll from the main thread ate the eventfd a sleeping "
                + "IOThread needed: SeaBIOS spins on its MBR read";
    }

    @Override
    public String explain() {
        return "Seed 004 (b37548fcd1, \"aio: Do aio_notify_accept only during blocking aio_poll\").\n"
                + "Threads: the main loop, IOThread io0 (the boot disk's dataplane and a scratch node), vCPU 0 "
                + "(the firmware).\n"
                + "Seams: the doorbell hook runs just before the firmware's first kick (the MBR read); a "
                + "LoopHold holds io0 at its next sleep once its external fds are masked, announced in "
                + "notify_me, so the race is replayed, not hoped for.\n"
                + "Steps: the main loop moves the scratch node from io0 to the main context: drained begin "
                + "disables io0's external handlers and wakes io0, which masks the ioeventfd and sleeps; "
                + "drained end notifies io0 (the eventfd is written); the move quiesces io0 with a non-blocking "
                + "poll from the main thread.\n"
                + "Fix: only a blocking poll accepts the notification, so io0 wakes, re-arms its fds and serves "
                + "the kick; the boot completes.\n"
                + "Legacy (NOTIFY_ACCEPT_IN_NONBLOCKING_POLL) reverts the placement of notifyAccept: the "
                + "foreign non-blocking poll accepts and eats the eventfd, io0 sleeps on with the ioeventfd "
                + "masked, and the firmware reports a hang at the MBR read.";
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
            ScenarioResult r = attempt(legacy, hangBound);
            if (r != null) {
                return r;
            }
        }
        throw new IllegalStateException(id() + ": could not stage the race in " + ATTEMPTS + " attempts");
    }

    /** One staged boot; null if io0 never reached its masked sleep before the move finished (not staged). */
    private ScenarioResult attempt(boolean legacy, Duration hangBound) throws Exception {
        Path img = Files.createTempFile("vblk-seed004-", ".raw");
        try {
            DefaultDisk.create(img, 16L << 20);
            LegacySwitches sw = new LegacySwitches();
            sw.set(LegacyBehavior.NOTIFY_ACCEPT_IN_NONBLOCKING_POLL, legacy);
            MachineConfig cfg = MachineConfig.of(1, 1, List.of(DiskSpec.image(img, "raw").withIothreads(List.of("io0"))))
                    .withLegacy(sw).withPollMaxNs(0)
                    .withFirmware(new Firmware.Options(hangBound, Duration.ofSeconds(30)));
            try (Machine m = Machine.start(cfg)) {
                AioContext io0 = m.iothread("io0").context();
                AioContext main = m.mainLoop().context();
                BlockNode scratch = m.watchdog(Duration.ofSeconds(30)).call("scratch node in io0", () -> {
                    BlockNode n = m.blockLayer().openNull("scratch", NullDriver.Options.of(1 << 20));
                    m.blockLayer().setAioContext(n, io0);
                    return n;
                });
                boolean[] staged = {false};
                m.vcpu(0).platform().setDoorbellHook(() -> {
                    LoopHold hold = LoopHold.atNextSleep(io0, io0::isExternalMasked);
                    try {
                        CompletableFuture<Void> op = m.mainLoop().run("drained section + context move",
                                () -> m.blockLayer().setAioContext(scratch, main));
                        m.await("drained section + context move", op, Duration.ofSeconds(30));
                        staged[0] = hold.isHeld();
                    } finally {
                        hold.release();
                    }
                });
                long t0 = System.nanoTime();
                BootReport boot = m.boot();
                long ns = System.nanoTime() - t0;
                if (!staged[0]) {
                    return null;
                }
                boolean hung = boot.verdict() == BootVerdict.HANG_AT_MBR_READ;
                if (!hung && boot.verdict() != BootVerdict.MBR_OK) {
                    throw new IllegalStateException(id() + ": unexpected boot verdict " + boot.verdict() + "\n"
                            + String.join("\n", boot.console()));
                }
                String detail = hung ? lastLine(boot) : "MBR read through io0 after the move";
                return new ScenarioResult(id(), title(), legacy, hung, ns, hangBound, detail, boot.dump());
            }
        } finally {
            Files.deleteIfExists(img);
        }
    }

    private static String lastLine(BootReport b) {
        List<String> c = b.console();
        for (int i = c.size() - 1; i >= 0; i--) {
            if (c.get(i).contains("hang at")) {
                return c.get(i).replace("vblk-bios: ", "firmware: ");
            }
        }
        return "";
    }
}
