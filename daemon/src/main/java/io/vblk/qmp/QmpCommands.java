package io.vblk.qmp;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The table of QMP commands a monitor dispatches: QEMU's
 * {@code QmpCommandList} with {@code qmp_register_command}. The daemon and
 * its parts each register their commands here; the wire protocol
 * ({@link QmpDispatcher}) knows none of them except {@code qmp_capabilities}.
 */
public final class QmpCommands {
    private final Map<String, QmpCommand> table = new LinkedHashMap<>();

    public synchronized void register(String name, QmpCommand.Handler h) {
        if (table.putIfAbsent(name, new QmpCommand(name, h)) != null) {
            throw new IllegalArgumentException("QMP command '" + name + "' is registered twice");
        }
    }

    public synchronized QmpCommand find(String name) {
        return table.get(name);
    }

    /** Names in registration order ({@code query-commands}). */
    public synchronized List<String> names() {
        return new ArrayList<>(table.keySet());
    }
}
