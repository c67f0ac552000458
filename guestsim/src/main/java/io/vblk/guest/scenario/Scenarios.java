package io.vblk.guest.scenario;

import java.util.ArrayList;
import java.util.List;

/**
 * The registry of seed scenarios {@code vblk scenario} runs, in seed order.
 * Ids are stable: they name the scenario on the command line and in verdicts.
 */
public final class Scenarios {
    private Scenarios() {
    }

    /** Every scenario available in this build. */
    public static List<Scenario> all() {
        List<Scenario> l = new ArrayList<>();
        l.add(new Seed000StreamCommit());
        l.add(new Seed000MirrorReset());
        l.add(new Seed001DetachBh());
        l.add(new Seed001DataplaneStop());
        l.add(new Seed002SnapshotLock());
        l.add(new Seed003InactivateAll());
        l.add(new Seed004MbrRead());
        l.add(new Bug005IothreadStop());
        l.add(new Bug006AsyncBarriers());
        l.add(new Bug007AioWaitKick());
        l.add(new Bug008EpollUpgradeRace());
        l.add(new Bug009BlkInFlightWhileDrained());
        l.add(new Bug010MirrorWaitInFlight());
        l.add(new Bug011JobCleanAcquire());
        l.add(new Bug013DrainWholeRequests());
        l.add(new Bug014HostNotifiersStop());
        l.add(new Bug015StartKickDrained());
        l.add(new Bug016IrqfdByThread());
        l.add(new Bug017UnrealizeDrain());
        l.add(new Bug018DelegateMainPoll());
        l.add(new Bug019EnableNotificationBarrier());
        l.add(new Bug020ThreadPoolNestedPoll());
        l.add(new Bug021DrainBeforeRemoveBs());
        return l;
    }

    /** The scenario with this id, or null. */
    public static Scenario byId(String id) {
        for (Scenario s : all()) {
            if (s.id().equals(id)) {
                return s;
            }
        }
        return null;
    }
}
