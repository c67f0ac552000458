package io.vblk.virtio;

import java.util.concurrent.atomic.AtomicInteger;

/** A transport stand-in that counts what the device asks of it. */
final class RecordingBus implements VirtioBus {
    final AtomicInteger queueInterrupts = new AtomicInteger();
    final AtomicInteger irqfdSignals = new AtomicInteger();
    final AtomicInteger configInterrupts = new AtomicInteger();
    final AtomicInteger resets = new AtomicInteger();

    @Override
    public void raiseQueueInterrupt(int queueIndex) {
        queueInterrupts.incrementAndGet();
    }

    @Override
    public void signalGuestNotifier(int queueIndex) {
        irqfdSignals.incrementAndGet();
    }

    @Override
    public void raiseConfigInterrupt() {
        configInterrupts.incrementAndGet();
    }

    @Override
    public void deviceReset() {
        resets.incrementAndGet();
    }
}
