package io.vblk.txn;

import io.vblk.aio.ClosedContextException;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;

import java.util.ArrayList;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A group of block actions that succeed or fail together: QEMU's
 * {@code qmp_transaction}. Each action is prepared in order; if one fails,
 * every action tried so far is aborted (leaving the graph and the devices
 * exactly as before), otherwise each is committed; then each is cleaned.
 * Runs in the main loop, holding no context lock: each action takes the
 * locks it needs, inside each phase (seed 002).
 */
public final class Transaction {
    private static final Logger LOG = LoggerFactory.getLogger(Transaction.class);

    private Transaction() {
    }

    /** Runs {@code actions} as one transaction; throws a {@link BlockException} naming the action that failed. */
    public static void run(BlockLayer layer, List<? extends TransactionAction> actions) {
        if (!layer.loop().context().inHomeThread()) {
            throw new IllegalStateException("a transaction runs in the main loop, not in thread '"
                    + Thread.currentThread().getName() + "'");
        }
        List<TransactionAction> tried = new ArrayList<>();
        try {
            runPhases(actions, tried);
        } catch (ClosedContextException e) {
            for (TransactionAction a : tried) {
                a.teardown(); // unwinding a hang: let the stuck IOThreads go
            }
            throw e;
        }
    }

    private static void runPhases(List<? extends TransactionAction> actions, List<TransactionAction> tried) {
        RuntimeException failure = null;
        TransactionAction failed = null;
        for (TransactionAction a : actions) {
            tried.add(a);
            try {
                a.prepare();
            } catch (ClosedContextException e) {
                throw e; // the machine is being torn down under a hang: unwind
            } catch (RuntimeException e) {
                failure = e;
                failed = a;
                break;
            }
        }
        if (failure != null) {
            LOG.info("transaction: {} failed ({}); aborting {} action(s)", failed.describe(), failure.getMessage(),
                    tried.size());
            for (TransactionAction a : tried) {
                phase("abort", a, a::abort);
            }
        } else {
            for (TransactionAction a : tried) {
                phase("commit", a, a::commit);
            }
        }
        for (TransactionAction a : tried) {
            phase("clean", a, a::clean);
        }
        if (failure != null) {
            throw new BlockException("transaction aborted: " + failed.describe() + ": " + failure.getMessage(), failure);
        }
    }

    private static void phase(String what, TransactionAction a, Runnable r) {
        try {
            r.run();
        } catch (ClosedContextException e) {
            throw e;
        } catch (RuntimeException e) {
            LOG.error("transaction: {} of {} failed", what, a.describe(), e);
        }
    }
}
