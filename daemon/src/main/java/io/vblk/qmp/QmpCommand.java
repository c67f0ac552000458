package io.vblk.qmp;

import com.fasterxml.jackson.databind.JsonNode;

/**
 * One entry of the dispatch table: QEMU's {@code QmpCommand}
 * (qapi/qmp-registry.c), a name and the function that runs it. The handler
 * reads its arguments through {@link QapiArgs} and calls
 * {@link QapiArgs#end()} before it changes anything, so an unknown argument
 * leaves no trace; it returns the {@code "return"} value or throws a
 * {@link QmpError}.
 */
public record QmpCommand(String name, Handler handler) {
    /** The command's body; runs in the main loop. */
    @FunctionalInterface
    public interface Handler {
        JsonNode run(QapiArgs args);
    }
}
