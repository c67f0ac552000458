package io.vblk.daemon;

import io.vblk.aio.IOThread;
import io.vblk.block.BlockNode;

/**
 * The options every export type shares: QAPI's {@code BlockExportOptions}
 * base ({@code type}, {@code id}, {@code node-name}, {@code writable},
 * {@code writethrough}, {@code iothread}, {@code fixed-iothread}), already
 * resolved to objects. The type-specific members are read by the
 * {@link ExportType}.
 */
public record BlockExportOptions(String type, String id, BlockNode node, boolean writable, boolean writethrough,
                                 IOThread iothread, boolean fixedIothread) {
}
