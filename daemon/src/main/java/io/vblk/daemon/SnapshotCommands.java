package io.vblk.daemon;

import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpCommands;
import io.vblk.qmp.QmpError;
import io.vblk.txn.ExternalSnapshot;
import io.vblk.txn.Transaction;
import io.vblk.txn.TransactionAction;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code blockdev-snapshot-sync}, {@code blockdev-snapshot} and
 * {@code transaction} (QEMU's blockdev.c {@code qmp_transaction} with its
 * {@code external_snapshot_*} action), through {@link io.vblk.txn}: an
 * action list is prepared in order and either every action commits or every
 * one tried is aborted. The transaction actions vblk has are
 * {@code blockdev-snapshot-sync} and {@code blockdev-snapshot}.
 */
final class SnapshotCommands {
    private SnapshotCommands() {
    }

    /** One checked transaction action, made into a {@link TransactionAction} in the main loop. */
    private interface Action {
        TransactionAction action(Daemon d);
    }

    /** The arguments of one blockdev-snapshot (an overlay the client added with blockdev-add), checked. */
    private record Snapshot(String node, String overlay) implements Action {
        static Snapshot parse(QapiArgs a) {
            String node = a.str("node");
            String overlay = a.str("overlay");
            a.end();
            return new Snapshot(node, overlay);
        }

        @Override
        public TransactionAction action(Daemon d) {
            return ExternalSnapshot.ofOverlay(d.layer(), find(d, node), find(d, overlay));
        }
    }

    private static BlockNode find(Daemon d, String name) {
        BlockNode n = d.layer().node(name);
        if (n == null) {
            throw QmpError.generic("Cannot find device='" + name + "' nor node-name='" + name + "'");
        }
        return n;
    }

    /** The arguments of one blockdev-snapshot-sync, checked. */
    private record Sync(String node, Path file, String snapshotNode) implements Action {
        static Sync parse(QapiArgs a) {
            String device = a.optStr("device", null);
            String nodeName = a.optStr("node-name", null);
            String file = a.str("snapshot-file");
            String snapNode = a.optStr("snapshot-node-name", null);
            String format = a.optStr("format", "qcow2");
            String mode = a.optEnum("mode", "absolute-paths", "existing", "absolute-paths");
            a.end();
            if (device == null && nodeName == null) {
                throw QmpError.generic("Cannot find device= nor node_name=");
            }
            if (!format.equals("qcow2")) {
                throw QmpError.generic("snapshot format '" + format + "' is not supported yet by vblk (qcow2)");
            }
            if (!mode.equals("absolute-paths")) {
                throw QmpError.generic("mode=existing is not supported yet by vblk's snapshots");
            }
            if (snapNode == null) {
                throw QmpError.generic("vblk needs snapshot-node-name (it does not name nodes itself)");
            }
            return new Sync(nodeName != null ? nodeName : device, Path.of(file), snapNode);
        }

        @Override
        public TransactionAction action(Daemon d) {
            return new ExternalSnapshot(d.layer(), find(d, node), file.toAbsolutePath(), snapshotNode);
        }
    }

    static void register(Daemon d, QmpCommands c) {
        c.register("blockdev-snapshot-sync", a -> {
            Sync s = Sync.parse(a);
            run(d, List.of(s));
            return null;
        });
        c.register("blockdev-snapshot", a -> {
            run(d, List.of(Snapshot.parse(a)));
            return null;
        });
        c.register("transaction", a -> {
            JsonNode actions = a.optRaw("actions");
            QapiArgs props = a.optObject("properties");
            if (props != null) {
                props.optEnum("completion-mode", "individual", "individual", "grouped");
            }
            a.end();
            if (actions == null) {
                throw QmpError.generic("Parameter 'actions' is missing");
            }
            if (!actions.isArray()) {
                throw QmpError.generic("Invalid parameter type for 'actions', expected: array");
            }
            List<Action> l = new ArrayList<>();
            int i = 0;
            for (JsonNode act : actions) {
                if (!act.isObject()) {
                    throw QmpError.generic("Invalid parameter type for 'actions[" + i + "]', expected: object");
                }
                QapiArgs x = QapiArgs.json((ObjectNode) act);
                String type = x.enumValue("type", "blockdev-snapshot-sync", "blockdev-snapshot", "abort",
                        "block-dirty-bitmap-add", "block-dirty-bitmap-remove", "block-dirty-bitmap-clear",
                        "block-dirty-bitmap-enable", "block-dirty-bitmap-disable", "block-dirty-bitmap-merge",
                        "blockdev-backup", "drive-backup", "blockdev-snapshot-internal-sync");
                if (type.equals("blockdev-snapshot-sync")) {
                    l.add(Sync.parse(x.object("data")));
                } else if (type.equals("blockdev-snapshot")) {
                    l.add(Snapshot.parse(x.object("data")));
                } else {
                    throw QmpError.generic("transaction action '" + type + "' is not supported yet by vblk "
                            + "(blockdev-snapshot-sync and blockdev-snapshot)");
                }
                x.end();
                i++;
            }
            run(d, l);
            return null;
        });
    }

    private static void run(Daemon d, List<Action> list) {
        d.run("transaction", () -> {
            List<TransactionAction> actions = new ArrayList<>();
            for (Action s : list) {
                actions.add(s.action(d));
            }
            try {
                Transaction.run(d.layer(), actions);
            } catch (BlockException e) {
                // QEMU answers with the failed action's own error, as prepare phrased it
                throw QmpError.generic(e.getCause() instanceof BlockException c ? c.getMessage() : e.getMessage());
            }
        });
    }
}
