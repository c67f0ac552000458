package io.vblk.tests;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.core.importer.Location;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The layer map of DESIGN.md, checked rather than remembered: which package of
 * main code may use which, and no package cycle anywhere. Maven's module
 * dependencies already stop an import against the arrows between modules;
 * this test also holds what Maven cannot see — packages inside one module
 * ({@code io.vblk.guest} and its scenarios, {@code virtio} and
 * {@code virtio.blk}) and arrows a dependency would allow but the design does
 * not (a job naming the qcow2 format rather than asking the registry).
 */
class ArchitectureTest {
    /**
     * For each package of main code (a trailing ".." takes its subpackages),
     * the io.vblk packages it may depend on besides itself. Everything else
     * under io.vblk is forbidden to it.
     */
    private static final Map<String, Set<String>> ALLOWED = new LinkedHashMap<>();

    static {
        ALLOWED.put("io.vblk.aio", Set.of());
        ALLOWED.put("io.vblk.block", Set.of("io.vblk.aio"));
        ALLOWED.put("io.vblk.block.qcow2", Set.of("io.vblk.aio", "io.vblk.block"));
        ALLOWED.put("io.vblk.block.rbd", Set.of("io.vblk.aio", "io.vblk.block"));
        // jobs and transactions reach formats through BlockDriver / BlockFormat only (a format by name, from the
        // registry), so they name no format package although their module depends on qcow2's
        ALLOWED.put("io.vblk.job", Set.of("io.vblk.aio", "io.vblk.block"));
        ALLOWED.put("io.vblk.txn", Set.of("io.vblk.aio", "io.vblk.block", "io.vblk.job"));
        ALLOWED.put("io.vblk.virtio", Set.of("io.vblk.aio", "io.vblk.block"));
        ALLOWED.put("io.vblk.virtio.blk", Set.of("io.vblk.aio", "io.vblk.block", "io.vblk.virtio"));
        ALLOWED.put("io.vblk.dataplane..", Set.of("io.vblk.aio", "io.vblk.block", "io.vblk.virtio", "io.vblk.virtio.blk"));
        ALLOWED.put("io.vblk.vhost..", Set.of("io.vblk.aio", "io.vblk.block", "io.vblk.virtio", "io.vblk.virtio.blk",
                "io.vblk.dataplane.."));
        ALLOWED.put("io.vblk.nbd..", Set.of("io.vblk.aio", "io.vblk.block"));
        ALLOWED.put("io.vblk.testkit..", Set.of("io.vblk.aio", "io.vblk.block", "io.vblk.virtio", "io.vblk.virtio.blk"));
        ALLOWED.put("io.vblk.firmware..", Set.of());
        ALLOWED.put("io.vblk.guest..", Set.of("io.vblk.aio", "io.vblk.block", "io.vblk.block.qcow2", "io.vblk.job",
                "io.vblk.txn", "io.vblk.virtio", "io.vblk.virtio.blk", "io.vblk.dataplane..", "io.vblk.vhost..",
                "io.vblk.firmware.."));
        ALLOWED.put("io.vblk.bench..", Set.of("io.vblk.aio", "io.vblk.block", "io.vblk.block.qcow2", "io.vblk.job",
                "io.vblk.txn", "io.vblk.virtio", "io.vblk.virtio.blk", "io.vblk.dataplane..", "io.vblk.vhost..",
                "io.vblk.firmware..", "io.vblk.guest.."));
        // the QMP wire protocol knows no vblk object; the daemon builds its objects from the layers below
        ALLOWED.put("io.vblk.qmp", Set.of());
        ALLOWED.put("io.vblk.daemon", Set.of("io.vblk.aio", "io.vblk.block", "io.vblk.job", "io.vblk.txn",
                "io.vblk.virtio", "io.vblk.virtio.blk", "io.vblk.dataplane..", "io.vblk.vhost..", "io.vblk.qmp",
                "io.vblk.nbd..", "io.vblk.block.rbd"));
        ALLOWED.put("io.vblk.cli..", Set.of("io.vblk.aio", "io.vblk.block", "io.vblk.block.qcow2", "io.vblk.job",
                "io.vblk.txn", "io.vblk.virtio", "io.vblk.virtio.blk", "io.vblk.dataplane..", "io.vblk.vhost..",
                "io.vblk.firmware..", "io.vblk.guest..", "io.vblk.bench..", "io.vblk.nbd..", "io.vblk.qmp",
                "io.vblk.daemon"));
    }

    private static JavaClasses main;

    @BeforeAll
    static void importMainCode() {
        // main classes of every module, each once: not test classes, not the shaded jars that repeat them
        main = new ClassFileImporter()
                .withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .withImportOption(ArchitectureTest::notShaded)
                .importPackages("io.vblk");
    }

    private static boolean notShaded(Location l) {
        return !l.contains("/vblk.jar") && !l.contains("benchmarks.jar");
    }

    @Test
    void everyLayerIsImported() {
        for (String p : ALLOWED.keySet()) {
            String pkg = p.endsWith("..") ? p.substring(0, p.length() - 2) : p;
            assertTrue(main.stream().anyMatch(c -> c.getPackageName().equals(pkg)),
                    "no main class found in " + pkg + ": the rules below would check nothing there");
        }
    }

    @Test
    void packagesDependOnlyAlongTheArrows() {
        List<String> all = new ArrayList<>(ALLOWED.keySet());
        for (Map.Entry<String, Set<String>> e : ALLOWED.entrySet()) {
            List<String> forbidden = new ArrayList<>();
            for (String other : all) {
                if (!other.equals(e.getKey()) && !e.getValue().contains(other)) {
                    forbidden.add(other);
                }
            }
            noClasses().that().resideInAPackage(e.getKey())
                    .should().dependOnClassesThat().resideInAnyPackage(forbidden.toArray(String[]::new))
                    .because("DESIGN.md's layer map allows " + e.getKey() + " only " + e.getValue())
                    .check(main);
        }
    }

    @Test
    void noPackageCycles() {
        slices().matching("io.vblk.(**)").should().beFreeOfCycles().check(main);
    }
}
