package io.vblk.block;

import io.vblk.aio.Errno;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Error injection and request suspension over any child: QEMU's
 * {@code blkdebug}. Rules fail matching requests with an errno, once or
 * always, optionally only after N matching requests; a suspension holds the
 * next matching request until the test resumes it, so races are staged
 * deterministically instead of by timing. Rules may be changed from any
 * thread; requests run in the node's home context.
 *
 * <p>Besides these rules of vblk's own, the driver applies QEMU's
 * {@code inject-error} rules ({@link BlkDebugInjectError}, which says what
 * subset): armed by a debug event a parent raises ({@link #debugEvent}),
 * checked on every request before it is passed down. {@code vblk daemon}
 * builds them from a {@code blkdebug} blockdev's options.
 */
public final class BlkDebugDriver extends BlockDriver {
    private static final Logger LOG = LoggerFactory.getLogger(BlkDebugDriver.class);

    /** Which requests a rule or suspension matches. */
    public enum Op { READ, WRITE, FLUSH, DISCARD, WRITE_ZEROES, ANY }

    private final List<Rule> rules = new CopyOnWriteArrayList<>();
    private volatile int alignment = 1;
    private final List<Suspension> suspensions = new CopyOnWriteArrayList<>();
    /** QEMU's {@code s->rules[event]} for inject-error: every rule not yet spent. */
    private final List<BlkDebugInjectError> injectRules = new CopyOnWriteArrayList<>();
    /** QEMU's {@code s->active_rules}: the rules the last event that had any armed. */
    private final List<BlkDebugInjectError> activeRules = new CopyOnWriteArrayList<>();

    private BlockNode child() {
        return node().child(ChildRole.FILTERED);
    }

    /**
     * Fails requests of {@code op} overlapping [start, end) with {@code -errno}
     * once the rule has seen {@code skip} matching requests; {@code once}
     * retires it after the first failure.
     */
    public Rule injectError(Op op, long start, long end, int errno, int skip, boolean once) {
        Rule r = new Rule(op, start, end, errno, skip, once);
        rules.add(r);
        return r;
    }

    /**
     * Installs QEMU-style inject-error rules, then raises the {@code none}
     * event as blkdebug's open does (so rules on {@code none} are armed from
     * the start).
     */
    public void addInjectErrors(List<BlkDebugInjectError> l) {
        injectRules.addAll(l);
        debugEvent(BlkDebugInjectError.NONE);
    }

    /**
     * QEMU's {@code blkdebug_co_debug_event} for inject-error rules: the rules
     * of {@code event}, if there are any, become the armed ones, replacing
     * what an earlier event armed.
     */
    @Override
    public void debugEvent(String event) {
        if (injectRules.isEmpty()) {
            return; // no inject-error rules (the common case, and staged tests' suspensions): nothing to arm
        }
        List<BlkDebugInjectError> armed = new java.util.ArrayList<>();
        for (BlkDebugInjectError r : injectRules) {
            if (r.event.equals(event)) {
                armed.add(r);
            }
        }
        if (!armed.isEmpty()) {
            synchronized (activeRules) {
                activeRules.clear();
                activeRules.addAll(armed);
            }
        }
    }

    /** QEMU's {@code rule_check}: the first armed rule the request matches, spent if {@code once}; or null. */
    private BlkDebugInjectError armedRule(Op op, long offset, long bytes) {
        synchronized (activeRules) {
            for (BlkDebugInjectError r : activeRules) {
                if (r.matches(op, offset, bytes)) {
                    if (r.errno == 0) {
                        return null; // QEMU's rule_check: a matching rule without an error passes and stays
                    }
                    if (r.once) {
                        activeRules.remove(r);
                        injectRules.remove(r);
                    }
                    return r;
                }
            }
        }
        return null;
    }

    /** Requires requests aligned to {@code bytes} (a power of two), like blkdebug's {@code align} option. */
    public void setAlignment(int bytes) {
        if (bytes < 1 || Integer.bitCount(bytes) != 1) {
            throw new IllegalArgumentException("alignment must be a power of two, got " + bytes);
        }
        alignment = bytes;
    }

    @Override
    public int requestAlignment() {
        return alignment;
    }

    public void clearRules() {
        rules.clear();
    }

    /** Holds the next request of {@code op} overlapping [start, end) at the named point until resumed. */
    public Suspension suspend(String tag, Op op, long start, long end) {
        Suspension s = new Suspension(tag, op, start, end);
        suspensions.add(s);
        return s;
    }

    @Override
    public String formatName() {
        return "blkdebug";
    }

    @Override
    public long length() {
        return child().length();
    }

    @Override
    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        route(Op.READ, offset, bytes, qiov, flags, cb);
    }

    @Override
    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        route(Op.WRITE, offset, bytes, qiov, flags, cb);
    }

    @Override
    public void flush(BlockCompletion cb) {
        route(Op.FLUSH, 0, 0, null, 0, cb);
    }

    @Override
    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        route(Op.DISCARD, offset, bytes, null, 0, cb);
    }

    @Override
    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        route(Op.WRITE_ZEROES, offset, bytes, null, flags, cb);
    }

    @Override
    public BlockStatus blockStatus(long offset, long bytes) {
        return child().blockStatus(offset, bytes);
    }

    private void route(Op op, long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        for (Suspension s : suspensions) {
            if (s.matches(op, offset, bytes) && s.claim()) {
                suspensions.remove(s);
                s.hold(op, offset, bytes, qiov, flags, cb);
                return;
            }
        }
        for (Rule r : rules) {
            if (r.matches(op, offset, bytes) && r.fires()) {
                if (r.once) {
                    rules.remove(r);
                }
                LOG.debug("blkdebug '{}': failing {} offset={} bytes={} with {}", node().name(), op, offset, bytes,
                        Errno.name(r.errno));
                cb.complete(-r.errno);
                return;
            }
        }
        BlkDebugInjectError r = armedRule(op, offset, bytes);
        if (r != null && r.errno != 0) {
            LOG.debug("blkdebug '{}': {} fails {} offset={} bytes={}", node().name(), r, op, offset, bytes);
            if (r.immediately) {
                cb.complete(-r.errno);
            } else {
                node().context().bhScheduleOneshot("blkdebug-error", () -> cb.complete(-r.errno));
            }
            return;
        }
        forward(op, offset, bytes, qiov, flags, cb);
    }

    private void forward(Op op, long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        BlockNode c = child();
        switch (op) {
            case READ:
                c.preadv(offset, bytes, qiov, flags, cb);
                break;
            case WRITE:
                c.pwritev(offset, bytes, qiov, flags, cb);
                break;
            case FLUSH:
                c.flush(cb);
                break;
            case DISCARD:
                c.pdiscard(offset, bytes, cb);
                break;
            default:
                c.pwriteZeroes(offset, bytes, flags, cb);
                break;
        }
    }

    private static boolean overlaps(Op want, long start, long end, Op op, long offset, long bytes) {
        if (want != Op.ANY && want != op) {
            return false;
        }
        if (op == Op.FLUSH) {
            return true;
        }
        long e = end < 0 ? Long.MAX_VALUE : end;
        return offset < e && offset + Math.max(bytes, 1) > start;
    }

    /** An error-injection rule. */
    public static final class Rule {
        final Op op;
        final long start;
        final long end;
        final int errno;
        final boolean once;
        private final AtomicInteger toSkip;
        private final AtomicInteger fired = new AtomicInteger();

        Rule(Op op, long start, long end, int errno, int skip, boolean once) {
            if (errno <= 0) {
                throw new IllegalArgumentException("errno must be positive, got " + errno);
            }
            this.op = op;
            this.start = start;
            this.end = end;
            this.errno = errno;
            this.once = once;
            this.toSkip = new AtomicInteger(skip);
        }

        boolean matches(Op o, long offset, long bytes) {
            return overlaps(op, start, end, o, offset, bytes);
        }

        boolean fires() {
            if (toSkip.get() > 0 && toSkip.getAndDecrement() > 0) {
                return false;
            }
            fired.incrementAndGet();
            return true;
        }

        /** How many requests this rule failed. */
        public int fired() {
            return fired.get();
        }
    }

    /** A suspension point: holds one matching request until {@link #resume()}. */
    public final class Suspension {
        private final String tag;
        private final Op op;
        private final long start;
        private final long end;
        private final AtomicInteger claimed = new AtomicInteger();
        private final CompletableFuture<Void> reached = new CompletableFuture<>();
        private Op heldOp;
        private long heldOffset;
        private long heldBytes;
        private IoVec heldQiov;
        private int heldFlags;
        private BlockCompletion heldCb;

        Suspension(String tag, Op op, long start, long end) {
            this.tag = tag;
            this.op = op;
            this.start = start;
            this.end = end;
        }

        public String tag() {
            return tag;
        }

        boolean matches(Op o, long offset, long bytes) {
            return overlaps(op, start, end, o, offset, bytes);
        }

        boolean claim() {
            return claimed.compareAndSet(0, 1);
        }

        synchronized void hold(Op o, long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
            heldOp = o;
            heldOffset = offset;
            heldBytes = bytes;
            heldQiov = qiov;
            heldFlags = flags;
            heldCb = cb;
            LOG.debug("blkdebug '{}': request {} offset={} suspended at '{}'", node().name(), o, offset, tag);
            reached.complete(null);
        }

        /** Completes when a request has been suspended here. */
        public CompletableFuture<Void> reached() {
            return reached;
        }

        /** Lets the held request continue, in the node's home context. */
        public void resume() {
            if (!reached.isDone()) {
                throw new IllegalStateException("no request is suspended at '" + tag + "'");
            }
            node().context().bhScheduleOneshot("blkdebug-resume:" + tag, () -> {
                Op o;
                BlockCompletion cb;
                synchronized (this) {
                    o = heldOp;
                    cb = heldCb;
                    heldCb = null;
                }
                if (cb != null) {
                    forward(o, heldOffset, heldBytes, heldQiov, heldFlags, cb);
                }
            });
        }
    }
}
