package io.vblk.block;

/** The role of a child edge: QEMU's {@code BdrvChildRole}. */
public enum ChildRole {
    /** The protocol node a format driver stores its data in. */
    FILE,
    /** The image a format node reads unallocated data from. */
    BACKING,
    /** A filter's (e.g. error injection's) single child. */
    FILTERED,
    /** The node a job's filter copies to (a mirror's target), so the two share one AioContext. */
    TARGET
}
