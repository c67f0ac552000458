package io.vblk.daemon;

import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.block.ErrorPolicy;
import io.vblk.job.JobOptions;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpCommands;
import io.vblk.qmp.QmpError;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * QMP {@code drive-mirror} (QEMU's blockdev.c {@code qmp_drive_mirror}): the
 * daemon opens the target itself and then runs the mirror that
 * {@code blockdev-mirror} runs. With {@code mode=absolute-paths} (the
 * default) it first creates the target image as QEMU's
 * {@code bdrv_img_create} does — the size of the source, no backing file,
 * an existing file overwritten — in {@code format} (default: the source's
 * format; vblk creates raw and qcow2). With {@code mode=existing} the file
 * must exist and its format is probed unless given. The target node is named
 * {@code node-name}, or the job id with "-target" (QEMU gives an implicit
 * "#blockNNN" name); it belongs to the job, not the monitor: the job's end
 * drops it unless the pivot made it the export's node. vblk's subset:
 * {@code sync=full} only, no {@code replaces} or {@code granularity};
 * {@code unmap} is accepted and has no effect (the mirror
 * copies data, it never discards).
 */
final class DriveMirrorCommand {
    private DriveMirrorCommand() {
    }

    static void register(Daemon d, QmpCommands c) {
        c.register("drive-mirror", a -> {
            String device = a.str("device");
            String target = a.str("target");
            String format = a.optStr("format", null);
            String nodeName = a.optStr("node-name", null);
            String sync = a.enumValue("sync", "full", "top", "none", "incremental", "bitmap");
            String mode = a.optEnum("mode", "absolute-paths", "existing", "absolute-paths");
            String id = a.optStr("job-id", device);
            long speed = a.optInt("speed", 0);
            boolean autoFinalize = a.optBool("auto-finalize", true);
            boolean autoDismiss = a.optBool("auto-dismiss", true);
            a.optBool("unmap", true);
            int bufSize = JobCommands.bufSize(a);
            for (String k : new String[] {"replaces", "granularity"}) {
                if (a.has(k)) {
                    a.accept(k);
                    throw QmpError.generic("Parameter '" + k + "' is not supported yet by vblk's drive-mirror");
                }
            }
            ErrorPolicy onSource = JobCommands.onError(a, "on-source-error");
            ErrorPolicy onTarget = JobCommands.onError(a, "on-target-error");
            String copyMode = a.optEnum("copy-mode", "background", "background", "write-blocking");
            a.end();
            if (!sync.equals("full")) {
                throw QmpError.generic("sync=" + sync + " is not supported yet by vblk's drive-mirror (full)");
            }
            if (!copyMode.equals("background")) {
                throw QmpError.generic("copy-mode=" + copyMode + " is not supported yet by vblk's mirror");
            }
            if (speed < 0) {
                throw QmpError.generic("Parameter 'speed' expects a non-negative value");
            }
            JobOptions o = JobOptions.defaults().withSpeed(speed).withAutoFinalize(autoFinalize)
                    .withAutoDismiss(autoDismiss).withErrorPolicy(onSource, onTarget).withBufSize(bufSize);
            d.run("drive-mirror", () -> start(d, device, Path.of(target).toAbsolutePath(), format,
                    nodeName != null ? nodeName : id + "-target", mode.equals("existing"), id, o));
            return null;
        });
    }

    /** Main loop: create (unless existing), open, start the mirror; the target is closed again if that fails. */
    private static void start(Daemon d, String device, Path file, String format, String nodeName, boolean existing,
                              String id, JobOptions o) {
        BlockNode src = d.layer().node(device);
        if (src == null) {
            throw QmpError.generic("Cannot find device='" + device + "' nor node-name='" + device + "'");
        }
        if (d.jobs().job(id) != null) {
            throw QmpError.generic("Job ID '" + id + "' already in use");
        }
        if (d.layer().node(nodeName) != null) {
            throw QmpError.generic("Duplicate nodes with node-name='" + nodeName + "'");
        }
        String fmt = format != null ? format : existing ? null : src.driver().formatName();
        try {
            if (!existing) {
                refuseInUse(d, file);
                create(d, file, fmt, src.length());
            } else if (!Files.exists(file)) {
                throw QmpError.generic("Could not open '" + file + "': No such file or directory");
            }
            BlockNode target = d.layer().openImage(nodeName, file, fmt, false, false);
            try {
                d.jobs().mirror(id, src, target, null, o);
            } finally {
                target.unref(); // the job holds the target now (QEMU's bdrv_unref at the end of qmp_drive_mirror)
            }
        } catch (BlockException | IllegalArgumentException e) {
            throw QmpError.generic(e.getMessage());
        }
    }

    /**
     * Creating truncates the file: never one an open node serves (the source
     * itself, a backing file, another export's image). QEMU refuses through
     * the image locks (qsd 7.2: "Failed to get shared "consistent read" lock"); vblk's own nodes are
     * checked by file identity, which also covers {@code locking=off} nodes.
     */
    private static void refuseInUse(Daemon d, Path file) {
        if (!Files.exists(file)) {
            return;
        }
        for (BlockNode n : d.layer().nodes()) {
            Path p = n.isClosed() ? null : n.driver().imagePath();
            try {
                if (p != null && Files.exists(p) && Files.isSameFile(p, file)) {
                    throw QmpError.generic("Failed to get shared \"consistent read\" lock: '" + file + "' is the image of node '"
                            + n.name() + "', which is in use");
                }
            } catch (IOException e) {
                throw QmpError.generic("Could not check '" + file + "': " + e.getMessage());
            }
        }
    }

    /** QEMU's {@code bdrv_img_create} for a mirror target: {@code size} bytes, no backing; raw or qcow2. */
    private static void create(Daemon d, Path file, String fmt, long size) {
        try {
            if (fmt.equals("raw")) {
                try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
                    f.setLength(0); // as file-posix's create: what was there is gone
                    f.setLength(size);
                }
                return;
            }
            if (!fmt.equals("qcow2")) {
                throw QmpError.generic("vblk's drive-mirror creates raw and qcow2 targets, not '" + fmt
                        + "' (create it and use mode=existing)");
            }
            Files.deleteIfExists(file); // qcow2's create overwrites an existing file
            d.layer().format(fmt).create(file, size, null, null);
        } catch (IOException e) {
            throw QmpError.generic("Could not create '" + file + "': " + e.getMessage());
        }
    }
}
