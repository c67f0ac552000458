package io.vblk.aio;

/**
 * Pre-fix behaviours of the seed commits, each revertible on demand so a test
 * can show the hang the fix cured (DESIGN.md, rule 7). A switch reverts only
 * what its seed's patch changed; the hang must then arise from the mechanism.
 * Switches live in a {@link LegacySwitches} owned by one machine's main loop,
 * never in JVM-wide state.
 */
public enum LegacyBehavior {
    /** Seed 000: {@code BDRV_POLL_WHILE} loops only while the condition holds, leaving BHs its last poll scheduled. */
    POLL_WHILE_WITHOUT_BH_DRAIN("seed 000: pollWhile stops when the condition is false, without draining BHs"),
    /** Seed 001: detaching a node from a context does not run the old context's pending BHs. */
    NO_BH_QUIESCE_ON_DETACH("seed 001: setAioContext does not quiesce the old context's bottom halves"),
    /** Seed 001: dataplane stop does not flush the batched guest notification. */
    NO_NOTIFY_FLUSH_ON_STOP("seed 001: dataplane stop does not run the pending guest notification"),
    /** Seed 002: the external snapshot transaction keeps the context lock from prepare to clean. */
    SNAPSHOT_LOCK_ACROSS_TRANSACTION("seed 002: snapshot prepare keeps the context lock acquired until clean"),
    /** Seed 003: inactivate-all acquires a context once per node instead of once per context. */
    RECURSIVE_LOCK_IN_INACTIVATE_ALL("seed 003: inactivateAll acquires the context lock once per node"),
    /** Seed 004: every poll, including a non-blocking poll from a foreign thread, accepts the notification. */
    NOTIFY_ACCEPT_IN_NONBLOCKING_POLL("seed 004: notifyAccept runs in non-blocking polls too"),
    /** Bug 006 (5710a3e09f): aio_poll relies on the atomic add to notify_me as a barrier, without an explicit smp_mb. */
    NO_EXPLICIT_BARRIER_AFTER_NOTIFY_ME("bug 006: aio_poll raises notify_me with no smp_mb before it reads the event sources"),
    /** Bug 007 (7455ff1aa0): no smp_mb in aio_wait_kick nor after AIO_WAIT_WHILE counts itself in num_waiters. */
    AIO_WAIT_KICK_WITHOUT_BARRIER("bug 007: aio_wait_kick and AIO_WAIT_WHILE order num_waiters and the condition by no smp_mb"),
    /** Bug 009 (7f16476fab): a request parked while its backend is drained keeps its in-flight reference. */
    BLK_IN_FLIGHT_WHILE_QUEUED("bug 009: a request queued while the backend is drained keeps counting in flight"),
    /** Bug 010 (ce8cabbd17): a mirror operation waiting for a free slot may wait on any listed operation, even one that holds no slots (itself). */
    MIRROR_WAITS_ON_ANY_OP("bug 010: a mirror op waiting for a free slot waits on any op in ops_in_flight, not only on one that holds slots"),
    /** Bug 011 (eca0f3524a): a job's clean acquires the filter's context again before dropping the filter. */
    ACQUIRE_CONTEXT_IN_JOB_CLEAN("bug 011: the job's clean step acquires the filter's context again (backup_clean)"),
    /** Bug 013 (8f5e9a8ee1): a drain of a virtio-blk/vhost-user-blk backend waits for the block layer only, not for whole requests (push and notify). */
    DRAIN_WAITS_FOR_BLOCK_LAYER_ONLY("bug 013: draining the backend waits for its block-layer requests only, not until each request is pushed and notified"),
    /** Bug 014 (75dcb4d790): dataplane stop drains while still started and tears its host notifiers down after the drains. */
    HOST_NOTIFIERS_TORN_DOWN_AFTER_STOP_DRAIN("bug 014: dataplane stop drains with the dataplane still started and cleans up the host notifiers afterwards"),
    /** Bug 016 (bfa36802d1): virtio-blk picks the irqfd or the main-loop notification path by the dataplane's started flag, not by the thread. */
    IRQFD_CHOICE_BY_IOEVENTFD_STATE("bug 016: the guest-notification path is chosen by the ioeventfd state, not by the thread"),
    /** Bug 017 (7bfde688fb): virtio_blk_device_unrealize tears the device down without draining its backend first. */
    NO_DRAIN_IN_UNREALIZE("bug 017: virtio-blk's unrealize tears the device down without blk_drain"),
    /** Bug 018 (3c18a92dc4): a thread that runs no event loop counts as the main context's home thread, BQL or not. */
    MAIN_CONTEXT_HOME_WITHOUT_BQL("bug 018: any thread that is no IOThread is the main context's home thread, without the BQL"),
    /** Bug 019 (the smp_mb in virtio_queue_set_notification; upstream id not confirmed): re-enabling kicks has no smp_mb before the ring is re-checked. */
    NO_MB_ON_ENABLE_NOTIFICATION("bug 019: virtio_queue_set_notification(vq, 1) has no smp_mb before the caller re-reads avail.idx"),
    /** Bug 020 (3c80ca158c): the thread pool's completion BH does not schedule itself before running a completion. */
    THREAD_POOL_BH_NOT_RESCHEDULED("bug 020: the thread pool's completion BH runs a completion without scheduling itself first"),
    /** Bug 021 (4295c5fc61): ejecting a backend's medium (blk_remove_bs) drops the root child without draining the backend. */
    NO_DRAIN_IN_BLK_REMOVE_BS("bug 021: blk_remove_bs detaches the medium with requests still in flight"),
    /** Bug 015 (d3f6f294ae): dataplane start self-kicks each queue's host notifier only when the backend is not drained. */
    START_KICK_ONLY_WHEN_NOT_DRAINED("bug 015: dataplane start signals each queue's host notifier only if the backend is not drained"),
    /**
     * Era switch for bug 015 (5bdbaebcce, "virtio: Re-enable notifications after drain", Feb 2024): attaching a
     * queue's host notifier (after a drain, or at start) neither consumes a pending kick nor processes the queue;
     * only a signalled notifier makes the IOThread look at the ring.
     */
    ATTACH_WITHOUT_QUEUE_KICK("5bdbaebcce (era of bug 015): attaching a host notifier does not kick or process its queue"),
    /** Bug 005 (2362a28ea1): iothread_stop sets a stop flag and calls aio_notify instead of scheduling a stop BH in the IOThread's context. */
    IOTHREAD_STOP_BY_FLAG_AND_NOTIFY("bug 005: an IOThread is stopped by a flag its loop checks and an aio_notify, not by a BH in its own context"),
    /**
     * Era switch for bug 005: the aio_notify protocol before August 2020 ("async: always set ctx->notified in
     * aio_notify()" and "aio-posix: keep aio_notify_me disabled during polling", Stefan Hajnoczi; ids from memory:
     * 8c6b0356b5, 70232b5253): aio_notify marks the context notified and writes the eventfd only while a poller is
     * announced in notify_me, and a poller that raised notify_me re-evaluates its BHs and timers but not
     * {@code notified} before it sleeps.
     */
    AIO_NOTIFY_ONLY_WHILE_NOTIFY_ME("era of bug 005 (pre-Aug 2020): aio_notify does nothing unless notify_me is raised; a poller does not re-check notified before it sleeps"),
    /** Bug 008 (e62da98527): the poll-to-epoll upgrade copies the handler list without its lock, so a handler registered meanwhile goes to the old ops. */
    EPOLL_UPGRADE_WITHOUT_LIST_LOCK("bug 008: the fd monitor's epoll upgrade copies the handler list without holding its lock");

    private final String description;

    LegacyBehavior(String description) {
        this.description = description;
    }

    public String description() {
        return description;
    }
}
