package io.vblk.firmware;

import java.time.Duration;
import java.util.List;

/**
 * A SeaBIOS-like boot firmware for the simulated machine. Run on vCPU 0
 * after a reset: it enumerates PCI bus 0 and assigns BARs, initialises the
 * first virtio-blk device the way SeaBIOS does, reads the MBR to 0x7C00 with
 * a polled request, checks the 0x55AA signature, prints the partition table
 * on the serial console and writes its {@link BootVerdict} to the debug-exit
 * port. A read that never completes is reported as {@code hang at MBR read}
 * — the guest-visible symptom of every event-loop hang this project chases.
 */
public final class Firmware {
    public static final int VIRTIO_VENDOR = 0x1af4;
    public static final int VIRTIO_BLK_MODERN = 0x1042;
    public static final int VIRTIO_BLK_TRANSITIONAL = 0x1001;
    /** Where a BIOS loads the boot sector. */
    public static final long BOOT_SECTOR_ADDRESS = 0x7c00;
    static final String PREFIX = "vblk-bios: ";

    /** Firmware settings: how long a read may take before it is reported as a hang. */
    public record Options(Duration readTimeout, Duration resetTimeout) {
        public static Options defaults() {
            return new Options(Duration.ofSeconds(5), Duration.ofSeconds(5));
        }
    }

    private final Platform p;
    private final Options options;
    private final Console console;

    public Firmware(Platform p, Options options) {
        this.p = p;
        this.options = options;
        this.console = new Console(p);
    }

    /** Boots: returns (and writes to the debug-exit port) the verdict. */
    public BootVerdict boot() {
        BootVerdict v = run();
        p.out(Platform.DEBUG_EXIT_PORT, 1, v.code());
        return v;
    }

    private BootVerdict run() {
        console.println(PREFIX + "starting");
        PciConfig cfg = new PciConfig(p);
        PciBus bus = new PciBus(cfg);
        List<PciDevice> devices = bus.scan();
        for (PciDevice d : devices) {
            bus.assignBars(d);
        }
        FirmwareException last = null;
        for (PciDevice d : devices) {
            if (d.vendor != VIRTIO_VENDOR || (d.device != VIRTIO_BLK_MODERN && d.device != VIRTIO_BLK_TRANSITIONAL)) {
                continue;
            }
            VirtioPci vp = VirtioPci.probe(p, cfg, d);
            if (vp == null) {
                console.println(PREFIX + "virtio-blk " + d.name() + ": legacy-only device not supported");
                continue;
            }
            VirtioBlk blk = new VirtioBlk(p, vp);
            try {
                blk.init(options.resetTimeout().toNanos());
                console.println(PREFIX + "found virtio-blk " + blk.name() + ": " + blk.sectors + " sectors ("
                        + blk.sectors / 2048 + " MiB)");
                console.println(PREFIX + "booting from virtio-blk " + blk.name());
                return bootFrom(blk);
            } catch (FirmwareException e) {
                console.println(PREFIX + e.getMessage());
                if (e.verdict() != BootVerdict.NO_BOOT_DEVICE) {
                    return e.verdict();
                }
                last = e;
            }
        }
        console.println(PREFIX + "no bootable device" + (last == null ? " (no virtio-blk found)" : ""));
        return BootVerdict.NO_BOOT_DEVICE;
    }

    private BootVerdict bootFrom(VirtioBlk blk) throws FirmwareException {
        blk.read(0, 1, BOOT_SECTOR_ADDRESS, options.readTimeout().toNanos(), "MBR read");
        byte[] sector = new byte[512];
        p.ramRead(BOOT_SECTOR_ADDRESS, sector, 0, 512);
        Mbr mbr = new Mbr(sector);
        for (Mbr.Partition part : mbr.partitions()) {
            console.println(PREFIX + part);
        }
        if (!mbr.bootable()) {
            console.println(PREFIX + String.format("no bootable signature (found 0x%04x, want 0xaa55)", mbr.signature()));
            return BootVerdict.NO_BOOT_SIGNATURE;
        }
        console.println(PREFIX + "MBR OK");
        return BootVerdict.MBR_OK;
    }
}
