package io.vblk.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.bench.CpuAccounting.Kind;

import java.lang.management.ManagementFactory;
import java.util.Set;
import java.util.concurrent.CountDownLatch;

import org.junit.jupiter.api.Test;

class CpuAccountingTest {

    @Test
    void threadsAreClassifiedByTheirNames() {
        Set<String> io = Set.of("io0", "io1");
        assertEquals(Kind.VCPU, CpuAccounting.classify("vcpu0", io));
        assertEquals(Kind.VCPU, CpuAccounting.classify("vcpu12", io));
        assertEquals(Kind.IOTHREAD, CpuAccounting.classify("io1", io));
        assertEquals(Kind.OTHER, CpuAccounting.classify("io2", io));
        assertEquals(Kind.MAIN_LOOP, CpuAccounting.classify("main-loop", io));
        assertEquals(Kind.WORKER, CpuAccounting.classify("main-loop-worker-3", io));
        assertEquals(Kind.OTHER, CpuAccounting.classify("main", io));
        assertEquals(Kind.OTHER, CpuAccounting.classify("vcpu", io));
    }

    /** A thread named like a vCPU burns a known amount of its own CPU time inside the window. */
    @Test
    void cpuTimeOfAThreadInsideTheWindowIsChargedToItsKind() throws Exception {
        CpuAccounting acc = new CpuAccounting(Set.of("io0"));
        if (!acc.supported()) {
            return; // nothing to account on this JVM
        }
        CountDownLatch started = new CountDownLatch(1);
        CountDownLatch go = new CountDownLatch(1);
        CountDownLatch burned = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        long burnNs = 150_000_000L;
        Thread t = new Thread(() -> {
            started.countDown();
            try {
                go.await();
            } catch (InterruptedException e) {
                return;
            }
            java.lang.management.ThreadMXBean mx = ManagementFactory.getThreadMXBean();
            long t0 = mx.getCurrentThreadCpuTime();
            long x = 0;
            while (mx.getCurrentThreadCpuTime() - t0 < burnNs) {
                x += System.nanoTime() & 1;
            }
            if (x == 42) {
                System.out.print("");
            }
            burned.countDown();
            try {
                release.await(); // alive at the second snapshot: a thread that died is not accounted
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "vcpu7");
        t.start();
        started.await();
        CpuAccounting.Snapshot a = acc.snapshot();
        go.countDown();
        burned.await();
        CpuAccounting.Snapshot b = acc.snapshot();
        release.countDown();
        t.join();
        CpuAccounting.Usage u = CpuAccounting.between(a, b);
        long vcpu = u.get(Kind.VCPU);
        assertTrue(vcpu >= burnNs, "vCPU CPU " + vcpu + " ns, the thread burned at least " + burnNs);
        assertTrue(vcpu < burnNs + 100_000_000L, "vCPU CPU " + vcpu + " ns for a thread that burned " + burnNs);
        assertEquals(0, u.get(Kind.IOTHREAD));
    }
}
