package io.vblk.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A short seeded run of {@link VhostUserFuzzer} (the long one is run by hand,
 * see bench/RESULTS.md): no hang, no crash, the read-only image unchanged.
 */
class VhostUserFuzzTest {
    @Test
    void aSeededRandomFrontEndNeitherHangsNorCrashesNorWritesTheServer(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, true, false)) {
            VhostUserFuzzer f = new VhostUserFuzzer(20261207L, h);
            VhostUserFuzzer.Result r;
            try {
                r = f.run(1500, Long.MAX_VALUE);
            } finally {
                f.close();
            }
            assertEquals(0, r.hangs(), r.toString());
            assertEquals(0, r.crashes(), r.toString() + " " + h.server.mainLoop().failures());
            assertTrue(r.imageUnchanged(), r.toString());
            assertTrue(r.messages() >= 1500, r.toString());
            assertTrue(r.refusals() > 100, "the fuzzer reached the handlers' checks: " + r);
        }
    }
}
