package io.vblk.tests.linux;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * The loadable modules of a kernel package's {@code lib/modules/VERSION}
 * tree, which a package unpacked with {@code dpkg-deb -x} has without
 * {@code modules.dep} (depmod runs at install). Dependencies are read where
 * depmod reads them, the {@code depends=} entry of each module's
 * {@code .modinfo} ELF section, and resolved into an insmod order
 * (dependencies first). Modules listed in {@code modules.builtin} need no
 * loading.
 */
final class KernelModules {
    private final Path root;
    private final Map<String, Path> byName = new HashMap<>();
    private final Set<String> builtin = new LinkedHashSet<>();

    KernelModules(Path modulesDir) throws IOException {
        this.root = modulesDir;
        try (Stream<Path> s = Files.walk(modulesDir.resolve("kernel"))) {
            s.filter(p -> p.getFileName().toString().endsWith(".ko")).forEach(p -> byName.put(name(p), p));
        }
        Path b = modulesDir.resolve("modules.builtin");
        if (Files.exists(b)) {
            for (String l : Files.readAllLines(b)) {
                builtin.add(name(Path.of(l.trim())));
            }
        }
    }

    private static String name(Path ko) {
        String f = ko.getFileName().toString();
        return f.substring(0, f.length() - ".ko".length()).replace('-', '_');
    }

    /** The module files to insmod, in order, so that every one of {@code wanted} is present. */
    List<Path> loadOrder(List<String> wanted) throws IOException {
        LinkedHashSet<String> order = new LinkedHashSet<>();
        for (String w : wanted) {
            visit(w.replace('-', '_'), order, new LinkedHashSet<>());
        }
        List<Path> files = new ArrayList<>();
        for (String m : order) {
            files.add(byName.get(m));
        }
        return files;
    }

    private void visit(String m, Set<String> order, Set<String> path) throws IOException {
        if (order.contains(m) || builtin.contains(m)) {
            return;
        }
        Path ko = byName.get(m);
        if (ko == null) {
            throw new IOException("the kernel in " + root + " has no module " + m + " (neither built in nor a .ko)");
        }
        if (!path.add(m)) {
            throw new IOException("module dependency cycle: " + path);
        }
        for (String d : modinfo(ko).getOrDefault("depends", "").split(",")) {
            if (!d.isBlank()) {
                visit(d.trim(), order, path);
            }
        }
        path.remove(m);
        order.add(m);
    }

    /** The key=value strings of the module's ELF64 {@code .modinfo} section. */
    static Map<String, String> modinfo(Path ko) throws IOException {
        ByteBuffer elf = ByteBuffer.wrap(Files.readAllBytes(ko)).order(ByteOrder.LITTLE_ENDIAN);
        if (elf.getInt(0) != 0x464c457f || elf.get(4) != 2) {
            throw new IOException(ko + " is not an ELF64 object (compressed modules are not supported)");
        }
        long shoff = elf.getLong(0x28);
        int shentsize = Short.toUnsignedInt(elf.getShort(0x3a));
        int shnum = Short.toUnsignedInt(elf.getShort(0x3c));
        int shstrndx = Short.toUnsignedInt(elf.getShort(0x3e));
        int strtab = (int) elf.getLong((int) (shoff + (long) shstrndx * shentsize) + 0x18);
        for (int i = 0; i < shnum; i++) {
            int sh = (int) (shoff + (long) i * shentsize);
            if (cString(elf, strtab + elf.getInt(sh)).equals(".modinfo")) {
                int off = (int) elf.getLong(sh + 0x18);
                int size = (int) elf.getLong(sh + 0x20);
                Map<String, String> info = new HashMap<>();
                for (String kv : new String(elf.array(), off, size, StandardCharsets.UTF_8).split("\0")) {
                    int eq = kv.indexOf('=');
                    if (eq > 0) {
                        info.putIfAbsent(kv.substring(0, eq), kv.substring(eq + 1));
                    }
                }
                return info;
            }
        }
        throw new IOException(ko + " has no .modinfo section");
    }

    private static String cString(ByteBuffer b, int at) {
        int end = at;
        while (b.get(end) != 0) {
            end++;
        }
        return new String(b.array(), at, end - at, StandardCharsets.UTF_8);
    }
}
