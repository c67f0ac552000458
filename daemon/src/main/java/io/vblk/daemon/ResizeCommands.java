package io.vblk.daemon;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.job.Job;
import io.vblk.qmp.QmpCommands;
import io.vblk.qmp.QmpError;

import java.util.Map;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * QMP {@code block_resize}: QEMU's blockdev.c {@code qmp_block_resize}. The
 * node is found as {@code bdrv_lookup_bs} finds it (the daemon has no named
 * BlockBackends, so only {@code node-name} resolves, as in qsd), truncated
 * in its home context inside a drained section ({@link BlockNode#truncate},
 * unless a block job uses the node: then it is refused as QEMU's op blocker
 * refuses it, in qsd 7.2's words ({@code QERR_DEVICE_IN_USE} with the
 * {@code device} argument, "(null)" when only {@code node-name} was given),
 * QEMU's {@code bdrv_co_truncate}), and then every vhost-user-blk export whose
 * disk changed length tells its front-end (QEMU's {@code resize_cb} →
 * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG), from the dispatcher thread because
 * that waits on the main loop.
 */
final class ResizeCommands {
    private static final Logger LOG = LoggerFactory.getLogger(ResizeCommands.class);

    private ResizeCommands() {
    }

    static void register(Daemon d, QmpCommands c) {
        c.register("block_resize", a -> {
            String device = a.optStr("device", null);
            String nodeName = a.optStr("node-name", null);
            long size = a.integer("size");
            a.end();
            resize(d, device, nodeName, size);
            return null;
        });
    }

    private static void resize(Daemon d, String device, String nodeName, long size) {
        d.run("block_resize", () -> {
            BlockNode n = nodeName == null ? null : d.layer().node(nodeName);
            if (n == null) {
                throw QmpError.generic("Cannot find device='" + (device == null ? "" : device) + "' nor node-name='"
                        + (nodeName == null ? "" : nodeName) + "'");
            }
            if (size < 0) {
                throw QmpError.generic("Parameter 'size' expects a >0 size");
            }
            for (BlockChild e : n.parents()) {
                if (Job.of(e.parent()) != null) {
                    throw QmpError.generic("Device '" + (device == null ? "(null)" : device) + "' is in use");
                }
            }
            AioContext nc = n.context();
            try (AioContextLock.Held h = nc.inHomeThread() ? null : nc.acquire()) {
                n.truncate(size);
            } catch (BlockException e) {
                throw QmpError.generic(e.getMessage());
            }
            LOG.info("block_resize: node '{}' is now {} bytes", n.name(), n.length());
        });
        for (Map.Entry<BlockExport, Boolean> e : d.exports().list()) {
            if (!e.getValue() && e.getKey() instanceof VhostUserBlkExport v) {
                v.diskResized();
            }
        }
    }
}
