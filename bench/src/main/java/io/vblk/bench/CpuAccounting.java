package io.vblk.bench;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.EnumMap;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * CPU time by thread kind, from {@link ThreadMXBean}: a snapshot of every
 * live thread's CPU time at the start of the measurement window and one at
 * its end; the difference per thread, summed per kind. A thread born inside
 * the window (a thread-pool worker started on demand) counts from zero; one
 * that died inside it is lost (pool workers live ten idle seconds). The
 * process total (JIT and GC threads included) comes from the operating
 * system bean when the JVM offers it.
 */
public final class CpuAccounting {
    /** What a thread is, by name. */
    public enum Kind {
        VCPU("vCPU"), IOTHREAD("iothread"), MAIN_LOOP("main loop"), WORKER("workers"), OTHER("other");

        public final String label;

        Kind(String label) {
            this.label = label;
        }
    }

    private static final Pattern VCPU = Pattern.compile("vcpu\\d+");
    private static final Pattern WORKER = Pattern.compile("main-loop-worker-\\d+");

    private final ThreadMXBean mx = ManagementFactory.getThreadMXBean();
    private final Set<String> iothreadNames;

    /** {@code iothreadNames}: the machine's IOThreads (io0, io1, ...). */
    public CpuAccounting(Set<String> iothreadNames) {
        this.iothreadNames = Set.copyOf(iothreadNames);
        if (mx.isThreadCpuTimeSupported() && !mx.isThreadCpuTimeEnabled()) {
            mx.setThreadCpuTimeEnabled(true);
        }
    }

    public boolean supported() {
        return mx.isThreadCpuTimeSupported();
    }

    public Kind kindOf(String threadName) {
        return classify(threadName, iothreadNames);
    }

    /** vCPU threads are vcpuN, IOThreads by their names, the main loop 'main-loop', pool workers 'main-loop-worker-N'. */
    public static Kind classify(String name, Set<String> iothreadNames) {
        if (name == null) {
            return Kind.OTHER;
        }
        if (VCPU.matcher(name).matches()) {
            return Kind.VCPU;
        }
        if (iothreadNames.contains(name)) {
            return Kind.IOTHREAD;
        }
        if (name.equals("main-loop")) {
            return Kind.MAIN_LOOP;
        }
        if (WORKER.matcher(name).matches()) {
            return Kind.WORKER;
        }
        return Kind.OTHER;
    }

    /** CPU time of every live thread, by id, with its kind. */
    public Snapshot snapshot() {
        Map<Long, long[]> cpu = new HashMap<>();
        long[] ids = mx.getAllThreadIds();
        java.lang.management.ThreadInfo[] infos = mx.getThreadInfo(ids);
        for (int i = 0; i < ids.length; i++) {
            if (infos[i] == null) {
                continue;
            }
            long t = mx.getThreadCpuTime(ids[i]);
            if (t < 0) {
                continue;
            }
            cpu.put(ids[i], new long[] {t, kindOf(infos[i].getThreadName()).ordinal()});
        }
        return new Snapshot(cpu, processCpuNs(), System.nanoTime());
    }

    /** CPU time of the whole JVM process, or -1 when the platform does not say. */
    public static long processCpuNs() {
        java.lang.management.OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
        if (os instanceof com.sun.management.OperatingSystemMXBean) {
            return ((com.sun.management.OperatingSystemMXBean) os).getProcessCpuTime();
        }
        return -1;
    }

    /** Thread CPU times at one instant. */
    public record Snapshot(Map<Long, long[]> threads, long processNs, long wallNs) {
    }

    /** CPU nanoseconds per kind between two snapshots, plus the process total and the wall time. */
    public record Usage(EnumMap<Kind, Long> byKind, long processNs, long wallNs) {
        public long get(Kind k) {
            return byKind.getOrDefault(k, 0L);
        }

        /** The sum over the kinds that serve I/O: vCPU, iothread, main loop and workers. */
        public long ioThreadsTotal() {
            return get(Kind.VCPU) + get(Kind.IOTHREAD) + get(Kind.MAIN_LOOP) + get(Kind.WORKER);
        }
    }

    public static Usage between(Snapshot a, Snapshot b) {
        EnumMap<Kind, Long> m = new EnumMap<>(Kind.class);
        for (Kind k : Kind.values()) {
            m.put(k, 0L);
        }
        for (Map.Entry<Long, long[]> e : b.threads().entrySet()) {
            long[] end = e.getValue();
            long[] start = a.threads().get(e.getKey());
            long d = end[0] - (start == null ? 0 : start[0]);
            if (d > 0) {
                Kind k = Kind.values()[(int) end[1]];
                m.merge(k, d, Long::sum);
            }
        }
        long proc = a.processNs() >= 0 && b.processNs() >= 0 ? b.processNs() - a.processNs() : -1;
        return new Usage(m, proc, b.wallNs() - a.wallNs());
    }
}
