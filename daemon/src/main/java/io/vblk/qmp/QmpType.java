package io.vblk.qmp;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * The JSON type a QMP argument must have, with QEMU's name for it in
 * "Invalid parameter type for 'x', expected: NAME" (the QObject input
 * visitor's wording, qapi/qobject-input-visitor.c).
 */
public enum QmpType {
    STRING("string"),
    INTEGER("integer"),
    /** An integer that must not be negative (QAPI's {@code size}/{@code uint64}). */
    SIZE("integer"),
    BOOLEAN("boolean"),
    OBJECT("object"),
    ARRAY("array"),
    /** Any value (QAPI's {@code any}); the command checks it. */
    ANY("any");

    private final String qapiName;

    QmpType(String qapiName) {
        this.qapiName = qapiName;
    }

    public String qapiName() {
        return qapiName;
    }

    /** Whether {@code v} has this type; exact JSON integers only for the integer types, as QEMU's visitor. */
    public boolean accepts(JsonNode v) {
        switch (this) {
            case STRING:
                return v.isTextual();
            case INTEGER:
                return v.isIntegralNumber() && v.canConvertToLong();
            case SIZE:
                return v.isIntegralNumber() && v.canConvertToLong() && v.asLong() >= 0;
            case BOOLEAN:
                return v.isBoolean();
            case OBJECT:
                return v.isObject();
            case ARRAY:
                return v.isArray();
            default:
                return true;
        }
    }
}
