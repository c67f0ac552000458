package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * Both halves of the wake-up invariant at {@link AioNotifier}'s level, step by
 * step in one thread, with the eventfd watched through a {@link FdMonEpoll}
 * the way the poll loop watches it: a notification before the poller
 * announces itself keeps it awake without a syscall; one after it writes the
 * eventfd, once.
 */
class AioNotifierTest {

    @Test
    void eventfdIsWrittenOnlyForAnAnnouncedPollerAndANotificationIsNeverLost() {
        AioNotifier n = new AioNotifier("t");
        FdMonEpoll mon = new FdMonEpoll("t");
        FdMonEvents ev = new FdMonEvents();
        try {
            mon.add(n.fd(), LibC.EPOLLIN, AioNotifier.EPOLL_DATA);

            // Nobody sleeps (notify_me == 0): the notification only marks the context.
            n.aioNotify();
            assertTrue(n.isNotified());
            assertEquals(0, n.eventfdWrites());
            assertEquals(0, mon.wait(ev, 0), "no eventfd write while notify_me is 0");
            // ... and a poller that announces itself afterwards sees it and must not sleep.
            assertFalse(n.enterBlockingWait(), "notified before the announcement: the poller must not sleep");
            assertEquals(2, n.notifyMe());
            n.leaveBlockingWait();
            n.aioNotifyAccept(false);
            assertFalse(n.isNotified());
            assertEquals(0, n.notifyMe());

            // A poller announced itself: the notification writes the eventfd it sleeps on, once.
            assertTrue(n.enterBlockingWait(), "nothing notified: the poller may sleep");
            n.aioNotify();
            assertEquals(1, n.eventfdWrites());
            n.aioNotify();
            assertEquals(1, n.eventfdWrites(), "already notified: no second write");
            assertEquals(1, mon.wait(ev, 5_000_000_000L), "the sleeper is woken");
            assertTrue(ev.contains(1, AioNotifier.EPOLL_DATA));
            n.leaveBlockingWait();
            n.aioNotifyAccept(true);
            assertFalse(n.isNotified());
            assertEquals(0, mon.wait(ev, 0), "accept consumed the eventfd");
        } finally {
            mon.close();
            n.close();
        }
    }
}
