package io.vblk.tests.linux;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * The Linux guest's initramfs, built from the host's Debian packages: busybox
 * (the shell and every small tool, as links made by {@code /init}), fio and
 * mkfs.ext4 with the shared libraries they load (at the paths {@code ldd}
 * gives), the kernel modules the block device needs ({@code virtio_pci},
 * {@code virtio_blk}: modules in Debian's cloud kernel; ext4 is built in),
 * and the {@code /init} and command loop of this package's resources. An
 * uncompressed newc cpio (the kernel unpacks it faster than it inflates a
 * gzip under TCG), cached next to the kernel under a name that hashes every
 * input — a new fio, kernel or init script makes a new one — and written to a
 * temporary file first, so a reader never sees half an archive.
 */
final class GuestInitramfs {
    /** Modules the guest needs and the cloud kernel may build as modules. */
    static final List<String> MODULES = List.of("virtio_pci", "virtio_blk");
    private static final int FORMAT = 1;
    private static final Duration UNUSED_FOR = Duration.ofDays(2);

    /** A file of the archive: where it goes (no leading slash) and where it comes from. */
    private record Entry(String path, Path source, int perm) {
    }

    private GuestInitramfs() {
    }

    /** The archive for {@code kernel}, built into {@code cache}/initramfs unless an identical one is there. */
    static Path build(GuestKernel kernel, Path cache) throws IOException, InterruptedException {
        Path busybox = HostTools.require("busybox", "busybox-static");
        Path fio = HostTools.require("fio", "fio");
        Path mkfs = HostTools.require("mkfs.ext4", "e2fsprogs");

        List<Entry> files = new ArrayList<>();
        files.add(new Entry("bin/busybox", busybox, 0755));
        files.add(new Entry("usr/bin/fio", fio, 0755));
        files.add(new Entry("sbin/mkfs.ext4", mkfs, 0755));
        Path mke2fsConf = Path.of("/etc/mke2fs.conf");
        if (Files.exists(mke2fsConf)) {
            files.add(new Entry("etc/mke2fs.conf", mke2fsConf, 0644));
        }
        Set<Path> libs = new LinkedHashSet<>();
        for (Path bin : List.of(busybox, fio, mkfs)) {
            libs.addAll(SharedLibraries.of(bin));
        }
        Set<String> libDirs = new LinkedHashSet<>();
        for (Path lib : libs) {
            files.add(new Entry(lib.toString().substring(1), lib, 0755));
            libDirs.add(lib.getParent().toString());
        }
        List<Path> modules = new KernelModules(kernel.modules()).loadOrder(MODULES);
        List<String> names = new ArrayList<>();
        for (Path ko : modules) {
            String n = ko.getFileName().toString().replace(".ko", "").replace('-', '_');
            names.add(n);
            files.add(new Entry("lib/modules/vblk/" + n + ".ko", ko, 0644));
        }
        Map<String, byte[]> generated = new LinkedHashMap<>();
        generated.put("init", resource("init"));
        generated.put("etc/vblk-cmdloop", resource("vblk-cmdloop"));
        generated.put("etc/vblk-modules", lines(names));
        generated.put("etc/vblk-ld-path", String.join(":", libDirs).getBytes(StandardCharsets.UTF_8));

        String key = kernel.version() + "-" + hash(kernel, files, generated);
        Path dir = Files.createDirectories(cache.resolve("initramfs"));
        Path target = dir.resolve(key + ".cpio");
        if (Files.exists(target)) {
            Files.setLastModifiedTime(target, FileTime.fromMillis(System.currentTimeMillis())); // in use: not pruned
            return target;
        }
        Path tmp = Files.createTempFile(dir, ".build", ".cpio");
        try {
            try (OutputStream os = Files.newOutputStream(tmp); CpioWriter cpio = new CpioWriter(os)) {
                for (String d : List.of("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "mnt", "run",
                        "root", "etc")) {
                    cpio.directory(d);
                }
                cpio.charDevice("dev/console", 0600, 5, 1);
                for (Entry e : files) {
                    cpio.file(e.path(), e.source(), e.perm());
                }
                for (Map.Entry<String, byte[]> g : generated.entrySet()) {
                    cpio.file(g.getKey(), g.getValue(), g.getKey().equals("init") ? 0755 : 0644);
                }
            }
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } finally {
            Files.deleteIfExists(tmp);
        }
        prune(dir, target);
        return target;
    }

    /**
     * Removes archives no test used for {@link #UNUSED_FOR}: another checkout
     * sharing the cache (with another init script) may still be using a
     * different one, and each use refreshes its time.
     */
    private static void prune(Path dir, Path keep) throws IOException {
        long cutoff = System.currentTimeMillis() - UNUSED_FOR.toMillis();
        try (Stream<Path> all = Files.list(dir)) {
            for (Path p : all.filter(p -> !p.equals(keep) && p.getFileName().toString().endsWith(".cpio")).toList()) {
                if (Files.getLastModifiedTime(p).toMillis() < cutoff) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = GuestInitramfs.class.getResourceAsStream(name)) {
            if (in == null) {
                throw new IOException("missing test resource io/vblk/tests/linux/" + name);
            }
            return in.readAllBytes();
        }
    }

    private static byte[] lines(List<String> l) {
        return l.stream().map(s -> s + "\n").reduce("", String::concat).getBytes(StandardCharsets.UTF_8);
    }

    private static String hash(GuestKernel kernel, List<Entry> files, Map<String, byte[]> generated)
            throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(("format " + FORMAT + "\nkernel " + kernel.version() + "\n").getBytes(StandardCharsets.UTF_8));
            for (Entry e : files) {
                md.update((e.path() + " " + e.source().toRealPath() + " " + Files.size(e.source()) + " "
                        + Files.getLastModifiedTime(e.source()).toMillis() + "\n").getBytes(StandardCharsets.UTF_8));
            }
            for (Map.Entry<String, byte[]> g : generated.entrySet()) {
                md.update(g.getKey().getBytes(StandardCharsets.UTF_8));
                md.update(g.getValue());
            }
            return HexFormat.of().formatHex(md.digest(), 0, 6);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
