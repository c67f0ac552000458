package io.vblk.tests.linux;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The Debian cloud kernel the Linux guest boots
 * ({@code linux-image-6.1.0-N-cloud-amd64}, unpacked with {@code dpkg-deb
 * -x}), from the cache directory keyed by version that
 * {@code tests/linux-guest/fetch-kernel.sh} fills ({@code ./vblk test} runs
 * it before Maven; the harness runs it when the cache is empty).
 */
record GuestKernel(String version, Path root) {
    static final Duration FETCH_BOUND = Duration.ofMinutes(5);

    Path vmlinuz() {
        return root.resolve("boot/vmlinuz-" + version);
    }

    Path modules() {
        return root.resolve("lib/modules/" + version);
    }

    /** The newest complete kernel in {@code cache}, if any. */
    static Optional<GuestKernel> cached(Path cache) throws IOException {
        Path dir = cache.resolve("kernel");
        if (!Files.isDirectory(dir)) {
            return Optional.empty();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> Files.exists(p.resolve(".complete")))
                    .map(p -> new GuestKernel(p.getFileName().toString(), p))
                    .max(Comparator.comparing(GuestKernel::version, GuestKernel::compareVersions));
        }
    }

    /**
     * The cached kernel, or the one {@code script} fetches into {@code cache};
     * throws with the script's own explanation when it cannot.
     */
    static GuestKernel locate(Path cache, Path script) throws IOException, InterruptedException {
        Optional<GuestKernel> k = cached(cache);
        if (k.isPresent()) {
            return k.get();
        }
        if (!Files.isExecutable(script)) {
            throw new IOException("no kernel cached in " + cache + " and no " + script + " to fetch one");
        }
        Path log = Files.createTempFile("fetch-kernel", ".log");
        try {
            Process p = new ProcessBuilder(script.toString(), cache.toString()).redirectErrorStream(true)
                    .redirectOutput(log.toFile()).start();
            if (!p.waitFor(FETCH_BOUND.toSeconds(), TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException(script + " did not finish within " + FETCH_BOUND);
            }
            String out = Files.readString(log, StandardCharsets.UTF_8);
            if (p.exitValue() != 0) {
                throw new IOException(script + " failed (exit " + p.exitValue() + "):\n" + out.strip());
            }
            return cached(cache).orElseThrow(() -> new IOException(script + " left no kernel in " + cache
                    + ":\n" + out.strip()));
        } finally {
            Files.deleteIfExists(log);
        }
    }

    /** Orders "6.1.0-9-cloud-amd64" before "6.1.0-10-cloud-amd64": numbers compared as numbers. */
    static int compareVersions(String a, String b) {
        List<String> x = List.of(a.split("(?<=\\D)(?=\\d)|(?<=\\d)(?=\\D)"));
        List<String> y = List.of(b.split("(?<=\\D)(?=\\d)|(?<=\\d)(?=\\D)"));
        for (int i = 0; i < Math.min(x.size(), y.size()); i++) {
            String p = x.get(i);
            String q = y.get(i);
            int c = Character.isDigit(p.charAt(0)) && Character.isDigit(q.charAt(0))
                    ? Long.compare(Long.parseLong(p), Long.parseLong(q)) : p.compareTo(q);
            if (c != 0) {
                return c;
            }
        }
        return Integer.compare(x.size(), y.size());
    }
}
