package io.vblk.vhost;

import java.util.List;

/**
 * What a vhost-user back-end reports as it serves front-ends: connections,
 * rings starting and stopping, refused messages. {@code vblk serve} prints
 * them; tests wait on them. Called from the back-end's main loop; must not
 * block.
 */
public interface VhostUserEvents {
    VhostUserEvents NONE = new VhostUserEvents() {
    };

    /** A front-end connected; {@code pid} from SO_PEERCRED (-1 if unknown). */
    default void connected(int pid) {
    }

    /** The front-end went away (or was dropped); every ring was stopped and the device reset. */
    default void disconnected(String why) {
    }

    /** The dataplane now serves these rings. */
    default void ringsStarted(List<Integer> rings) {
    }

    /** The dataplane stopped; these rings were served until now (every request answered and signalled). */
    default void ringsStopped(List<Integer> rings) {
    }

    /** A message was refused (malformed, unsupported, or invalid in the current state). */
    default void refused(String request, String why) {
    }
}
