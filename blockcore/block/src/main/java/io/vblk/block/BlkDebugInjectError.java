package io.vblk.block;

import io.vblk.aio.Errno;

import java.util.List;
import java.util.Locale;

/**
 * One {@code inject-error} rule of QEMU's blkdebug driver (block/blkdebug.c,
 * QAPI {@code BlkdebugInjectErrorOptions}), as {@link BlkDebugDriver} applies
 * it. Only this subset of blkdebug is mirrored:
 * <ul>
 *   <li>{@code event}: the rule is armed when a parent raises that debug
 *       event on the blkdebug node ({@link BlockNode#debugEvent}). vblk raises
 *       {@code read_aio} and {@code write_aio} (raw and qcow2, before a data
 *       request to their file child, as QEMU's formats do) and {@code none}
 *       (once, when the rules are installed, as blkdebug's open does); other
 *       event names are refused.</li>
 *   <li>When an event arms rules, the rules armed by an earlier event are
 *       disarmed (QEMU's {@code process_rule} restarts the active list);
 *       an armed rule stays armed until then, or until it fired once.</li>
 *   <li>{@code iotype} (default: read, write, write-zeroes, discard, flush),
 *       {@code sector} (the request must cover that 512-byte sector; -1, the
 *       default, any request), {@code errno} (default EIO), {@code once}
 *       (the rule is removed after it fired), {@code immediately} (complete
 *       the request with the error at once; otherwise from a bottom half of
 *       the node's context, as QEMU re-schedules the coroutine first).</li>
 * </ul>
 * Not mirrored: {@code state}/{@code set-state} rules, {@code config} files,
 * {@code suspend} breakpoints by event (vblk's tests use
 * {@link BlkDebugDriver#suspend} instead).
 */
public final class BlkDebugInjectError {
    public static final String READ_AIO = "read_aio";
    public static final String WRITE_AIO = "write_aio";
    public static final String NONE = "none";
    /** The events vblk's drivers raise. */
    public static final List<String> EVENTS = List.of(READ_AIO, WRITE_AIO, NONE);
    /** QAPI's {@code BlkdebugIOType}, in its order. */
    public static final List<String> IO_TYPES = List.of("read", "write", "write-zeroes", "discard", "flush",
            "block-status");
    /** The default {@code errno}: EIO. */
    public static final int EIO = Errno.EIO;

    final String event;
    private final int ioTypeMask;
    final long offset;
    final int errno;
    final boolean once;
    final boolean immediately;

    /**
     * A rule; {@code ioType} null means QEMU's default set, {@code sector} -1
     * means any request.
     */
    public BlkDebugInjectError(String event, String ioType, int errno, long sector, boolean once,
                               boolean immediately) {
        if (!EVENTS.contains(event)) {
            throw new BlockException("blkdebug event '" + event + "' is not supported yet by vblk (" + EVENTS + ")");
        }
        if (ioType != null && !IO_TYPES.contains(ioType)) {
            throw new BlockException("Invalid parameter '" + ioType + "'");
        }
        if (errno < 0) {
            throw new BlockException("blkdebug errno must not be negative, got " + errno);
        }
        this.event = event;
        this.ioTypeMask = ioType == null ? 0b11111 : 1 << IO_TYPES.indexOf(ioType);
        this.offset = sector < 0 ? -1 : sector * 512;
        this.errno = errno;
        this.once = once;
        this.immediately = immediately;
    }

    /** blkdebug's {@code rule_check} match: the I/O type is in the rule's set and the request covers its sector. */
    boolean matches(BlkDebugDriver.Op op, long reqOffset, long bytes) {
        int type = switch (op) {
            case READ -> 0;
            case WRITE -> 1;
            case WRITE_ZEROES -> 2;
            case DISCARD -> 3;
            case FLUSH -> 4;
            default -> -1;
        };
        if (type < 0 || (ioTypeMask & (1 << type)) == 0) {
            return false;
        }
        return offset == -1 || (bytes > 0 && offset >= reqOffset && offset < reqOffset + bytes);
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "inject-error(event=%s errno=%d offset=%d once=%b immediately=%b)", event,
                errno, offset, once, immediately);
    }
}
