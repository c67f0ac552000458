package io.vblk.job;

import io.vblk.block.BlockException;

/** A job command that cannot be carried out (bad state, busy node, bad arguments): QEMU's QMP error. */
public final class JobException extends BlockException {
    private static final long serialVersionUID = 1L;

    public JobException(String message) {
        super(message);
    }
}
