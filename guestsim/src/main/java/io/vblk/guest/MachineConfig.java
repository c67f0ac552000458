package io.vblk.guest;

import io.vblk.aio.AioContext;
import io.vblk.aio.LegacySwitches;
import io.vblk.block.FileOptions;
import io.vblk.firmware.Firmware;

import java.util.ArrayList;
import java.util.List;

/** What a {@link Machine} is made of: QEMU's command line, in short. */
public record MachineConfig(int vcpus, long ramBytes, List<String> iothreads, long pollMaxNs, List<DiskSpec> disks,
                            LegacySwitches legacy, Firmware.Options firmware, FileOptions fileOptions) {
    public static final long DEFAULT_RAM = 256L << 20;

    public MachineConfig {
        if (vcpus < 1 || vcpus > 64) {
            throw new IllegalArgumentException("vCPUs must be 1..64, got " + vcpus);
        }
        if (ramBytes < (4L << 20) || ramBytes > (3L << 30)) {
            throw new IllegalArgumentException("RAM must be 4 MiB..3 GiB, got " + ramBytes);
        }
        if (pollMaxNs < 0) {
            throw new IllegalArgumentException("poll-max-ns must be >= 0");
        }
        iothreads = List.copyOf(iothreads);
        disks = List.copyOf(disks);
        if (fileOptions == null) {
            fileOptions = FileOptions.defaults();
        }
        if (disks.size() > 24) {
            throw new IllegalArgumentException("at most 24 disks");
        }
        for (DiskSpec d : disks) {
            for (String t : d.iothreads()) {
                if (!iothreads.contains(t)) {
                    throw new IllegalArgumentException("disk uses IOThread '" + t + "', which the machine does not have "
                            + "(it has " + iothreads + ")");
                }
            }
        }
    }

    /** A machine with {@code n} IOThreads named io0..io{n-1}. */
    public static List<String> iothreadNames(int n) {
        List<String> l = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            l.add("io" + i);
        }
        return l;
    }

    public static MachineConfig of(int vcpus, int iothreads, List<DiskSpec> disks) {
        return new MachineConfig(vcpus, DEFAULT_RAM, iothreadNames(iothreads), AioContext.DEFAULT_POLL_MAX_NS, disks,
                new LegacySwitches(), Firmware.Options.defaults(), FileOptions.defaults());
    }

    public MachineConfig withLegacy(LegacySwitches sw) {
        return new MachineConfig(vcpus, ramBytes, iothreads, pollMaxNs, disks, sw, firmware, fileOptions);
    }

    public MachineConfig withFirmware(Firmware.Options o) {
        return new MachineConfig(vcpus, ramBytes, iothreads, pollMaxNs, disks, legacy, o, fileOptions);
    }

    public MachineConfig withPollMaxNs(long ns) {
        return new MachineConfig(vcpus, ramBytes, iothreads, ns, disks, legacy, firmware, fileOptions);
    }

    public MachineConfig withRam(long bytes) {
        return new MachineConfig(vcpus, bytes, iothreads, pollMaxNs, disks, legacy, firmware, fileOptions);
    }

    /**
     * How image files are opened ({@code -blockdev driver=file,aio=...,cache.direct=...}):
     * the defaults of the machine's block layer, read-only taken from each disk.
     */
    public MachineConfig withFileOptions(FileOptions o) {
        return new MachineConfig(vcpus, ramBytes, iothreads, pollMaxNs, disks, legacy, firmware, o);
    }
}
