package io.vblk.qmp;

/**
 * A command's failure as QMP reports it: QEMU's {@code Error} with its
 * {@code ErrorClass} ({@code qapi/error.h}). Only two classes are used by the
 * commands vblk implements, as in QEMU today: {@code CommandNotFound} for an
 * unknown command (and for commands refused before or after capability
 * negotiation), {@code GenericError} for everything else, with a readable
 * {@code desc}.
 */
public final class QmpError extends RuntimeException {
    public static final String GENERIC = "GenericError";
    public static final String COMMAND_NOT_FOUND = "CommandNotFound";

    private final String errorClass;

    public QmpError(String errorClass, String desc) {
        super(desc);
        this.errorClass = errorClass;
    }

    /** {@code error_setg}: a {@code GenericError}. */
    public static QmpError generic(String desc) {
        return new QmpError(GENERIC, desc);
    }

    public String errorClass() {
        return errorClass;
    }

    public String desc() {
        return getMessage();
    }
}
