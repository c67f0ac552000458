package io.vblk.daemon;

import io.vblk.qmp.QapiArgs;

/**
 * One kind of block export: QEMU's {@code BlockExportDriver}
 * (include/block/export.h). The daemon's {@link BlockExports} parses the
 * options every export shares and hands this type the rest; adding an
 * export type (NBD, FUSE) is one implementation of this interface
 * registered with {@link BlockExports#register}.
 */
public interface ExportType {
    /** The {@code type} value that selects it ("vhost-user-blk", "nbd"). */
    String type();

    /**
     * Creates and starts an export. Reads its own members from {@code args}
     * and calls {@link QapiArgs#end()} before creating anything, so an
     * unknown member leaves nothing behind; errors are
     * {@link io.vblk.qmp.QmpError}s. Called from the QMP dispatcher (not the
     * main loop): graph changes go through {@link ExportContext#inMainLoop}.
     */
    BlockExport create(ExportContext ctx, BlockExportOptions common, QapiArgs args);
}
