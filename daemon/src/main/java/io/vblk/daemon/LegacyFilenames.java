package io.vblk.daemon;

import io.vblk.block.BlockException;
import io.vblk.block.rbd.RbdOptions;
import io.vblk.qmp.QmpError;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * QEMU's legacy filename forms turned into {@code blockdev-add} options, as a
 * protocol driver's {@code bdrv_parse_filename} does: for callers that take
 * a file name ({@code vblk serve --image rbd:pool/image}) but build the
 * daemon's nodes.
 */
public final class LegacyFilenames {
    private LegacyFilenames() {
    }

    /** {@code rbd:pool/image[@snap][:conf=FILE][:id=USER][:key=value...]} as the members of a {@code driver=rbd} node. */
    public static ObjectNode rbd(String filename) {
        RbdOptions r;
        try {
            r = RbdOptions.parseFilename(filename);
        } catch (BlockException | IllegalArgumentException e) {
            throw QmpError.generic(e.getMessage());
        }
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("driver", "rbd");
        o.put("pool", r.pool());
        o.put("image", r.image());
        // the filename's other key=value pairs (librados settings such as rados_osd_op_timeout) travel in vblk's
        // x-rados-conf: dropped, a short op timeout asked for on the command line silently became the conf's
        String[][] opt = {{"namespace", r.namespace()}, {"snapshot", r.snapshot()}, {"conf", r.conf()},
            {"user", r.user()}, {"x-rados-conf", r.radosConfOption()}};
        for (String[] kv : opt) {
            if (kv[1] != null) {
                o.put(kv[0], kv[1]);
            }
        }
        return o;
    }
}
