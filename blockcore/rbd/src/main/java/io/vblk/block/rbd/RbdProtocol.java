package io.vblk.block.rbd;

import io.vblk.block.BlockDriver;
import io.vblk.block.BlockException;
import io.vblk.block.BlockProtocol;

/**
 * Registers the {@code rbd:} filename prefix with the block layer (QEMU's
 * {@code bdrv_rbd.protocol_name = "rbd"}), so {@code vblk serve --image
 * rbd:pool/image} and {@code vblk bench --backend rbd:...} open an RBD node
 * wherever a file name is accepted. Listed in
 * {@code META-INF/services/io.vblk.block.BlockProtocol}.
 */
public final class RbdProtocol implements BlockProtocol {
    @Override
    public String name() {
        return "rbd";
    }

    /**
     * A snapshot can only be opened read-only, and the caller must say so (the
     * node's flag comes from it): QEMU's {@code bdrv_apply_auto_read_only}
     * refusal "rbd snapshots are always read-only".
     */
    @Override
    public BlockDriver open(String filename, boolean readOnly) {
        RbdOptions o = RbdOptions.parseFilename(filename);
        if (o.snapshot() != null && !readOnly) {
            throw new BlockException("rbd: '" + filename + "' names snapshot '" + o.snapshot()
                    + "': rbd snapshots are always read-only, open it read-only");
        }
        return RbdDriver.open(o.withReadOnly(readOnly));
    }
}
