package io.vblk.dataplane;

import io.vblk.aio.IOThread;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Which IOThread serves each virtqueue of a device: QEMU's {@code iothread=}
 * (all queues on one) and {@code iothread-vq-mapping=} (explicit, or
 * round-robin over a list). The backend lives with queue 0's IOThread;
 * queues on other IOThreads reach it through hand-offs.
 */
public final class QueueMapping {
    private final IOThread[] byQueue;

    private QueueMapping(IOThread[] byQueue) {
        this.byQueue = byQueue;
    }

    /** Every queue on one IOThread. */
    public static QueueMapping single(IOThread t, int queues) {
        IOThread[] a = new IOThread[queues];
        Arrays.fill(a, t);
        return new QueueMapping(a);
    }

    /** Queues dealt round-robin over {@code threads}. */
    public static QueueMapping roundRobin(List<IOThread> threads, int queues) {
        if (threads.isEmpty()) {
            throw new IllegalArgumentException("round-robin mapping needs at least one IOThread");
        }
        if (new HashSet<>(threads).size() != threads.size()) {
            throw new IllegalArgumentException("an IOThread is listed twice in the mapping");
        }
        IOThread[] a = new IOThread[queues];
        for (int q = 0; q < queues; q++) {
            a[q] = threads.get(q % threads.size());
        }
        return new QueueMapping(a);
    }

    /**
     * An explicit mapping, IOThread → queues; every queue exactly once. Errors
     * name the offending queue or IOThread.
     */
    public static QueueMapping explicit(Map<IOThread, List<Integer>> map, int queues) {
        IOThread[] a = new IOThread[queues];
        for (Map.Entry<IOThread, List<Integer>> e : map.entrySet()) {
            for (int q : e.getValue()) {
                if (q < 0 || q >= queues) {
                    throw new IllegalArgumentException("queue " + q + " mapped to IOThread '" + e.getKey().name()
                            + "' does not exist (the device has " + queues + ")");
                }
                if (a[q] != null) {
                    throw new IllegalArgumentException("queue " + q + " is mapped twice ('" + a[q].name() + "' and '"
                            + e.getKey().name() + "')");
                }
                a[q] = e.getKey();
            }
        }
        List<Integer> missing = new ArrayList<>();
        for (int q = 0; q < queues; q++) {
            if (a[q] == null) {
                missing.add(q);
            }
        }
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("queues " + missing + " are not mapped to any IOThread");
        }
        return new QueueMapping(a);
    }

    public int queues() {
        return byQueue.length;
    }

    public IOThread iothread(int q) {
        return byQueue[q];
    }

    /** The distinct IOThreads, in queue order. */
    public List<IOThread> iothreads() {
        Set<IOThread> seen = new java.util.LinkedHashSet<>(Arrays.asList(byQueue));
        return new ArrayList<>(seen);
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        for (int q = 0; q < byQueue.length; q++) {
            sb.append(q == 0 ? "" : ", ").append("vq").append(q).append("->").append(byQueue[q].name());
        }
        return sb.toString();
    }
}
