package io.vblk.tests;

import io.vblk.guest.scenario.Scenario;
import io.vblk.guest.scenario.ScenarioResult;

import java.time.Duration;

import org.junit.jupiter.api.Test;

/** Development runner: -Dscenario=fully.qualified.Class -Dlegacy=true|false. */
class SeedScenarioDevTest {
    @Test
    void run() throws Exception {
        String cls = System.getProperty("scenario");
        if (cls == null) {
            return;
        }
        Scenario s = (Scenario) Class.forName(cls).getDeclaredConstructor().newInstance();
        for (String mode : System.getProperty("legacy", "false,true").split(",")) {
            ScenarioResult r = s.run(Boolean.parseBoolean(mode), Duration.ofSeconds(2));
            System.out.println("VERDICT " + r.verdict());
            if (r.dump() != null && Boolean.getBoolean("dump")) {
                System.out.println(r.dump());
            }
        }
    }
}
