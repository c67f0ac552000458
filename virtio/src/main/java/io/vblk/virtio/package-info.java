/**
 * Generic virtio: guest memory, split virtqueues, the device model and the
 * modern virtio-pci transport. A concrete device (virtio-blk in
 * {@code io.vblk.virtio.blk}) is a thin {@link io.vblk.virtio.VirtioDevice}
 * subclass.
 *
 * <h2>Pieces and their QEMU names</h2>
 * <table>
 * <caption>classes</caption>
 * <tr><th>class</th><th>QEMU</th><th>what for</th></tr>
 * <tr><td>{@link io.vblk.virtio.GuestMemory}, {@link io.vblk.virtio.RamRegion}</td>
 *     <td>{@code address_space_memory}, RAM MemoryRegions</td>
 *     <td>gpa to host address ({@code translate}, never throws), checked LE accessors
 *     for drivers, Netty views; regions may be shared memfds (vhost-user)</td></tr>
 * <tr><td>{@link io.vblk.virtio.HostMemory}</td><td>{@code address_space_*_cached}</td>
 *     <td>little-endian loads and stores at translated host addresses</td></tr>
 * <tr><td>{@link io.vblk.virtio.VirtQueue}, {@link io.vblk.virtio.VirtQueueElement}</td>
 *     <td>{@code VirtQueue}, {@code virtqueue_pop/fill/flush}, {@code VirtQueueElement}</td>
 *     <td>the device side of a split ring, allocation-free, strict about bad input; its parts:
 *     {@code DescriptorChainWalker} (the descriptor walk of {@code virtqueue_split_pop}),
 *     {@code VringRegions} ({@code virtio_init_region_cache}), {@code UsedSignal}
 *     ({@code virtio_should_notify})</td></tr>
 * <tr><td>{@link io.vblk.virtio.VirtioDevice}</td><td>{@code VirtIODevice}</td>
 *     <td>queues, kicks and interrupts, host notifiers, errors; its parts:
 *     {@code VirtioStatusMachine} ({@code virtio_set_status}, {@code virtio_set_features},
 *     {@code virtio_reset}), {@code StatusEventQueue}, {@code VirtioConfigSpace}</td></tr>
 * <tr><td>{@link io.vblk.virtio.VirtioBus}</td><td>{@code VirtioBusClass}</td>
 *     <td>what a device needs from its transport</td></tr>
 * <tr><td>{@link io.vblk.virtio.VirtioPciTransport}</td><td>{@code VirtIOPCIProxy}</td>
 *     <td>the PCI function: config space, BARs, capabilities, MSI-X, INTx/ISR,
 *     ioeventfds (host notifiers) and irqfds (guest notifiers); its parts:
 *     {@code VirtioPciCommonCfg}, {@code VirtioPciNotify} (notify region, host notifiers),
 *     {@code VirtioPciInterrupts} ({@code virtio_pci_notify}, {@code set_guest_notifiers})</td></tr>
 * <tr><td>{@link io.vblk.virtio.InterruptSink}</td><td>KVM irqchip, {@code msix_notify}, KVM_IRQFD</td>
 *     <td>where the function's interrupts go</td></tr>
 * </table>
 *
 * <h2>Decisions worth knowing</h2>
 * <ul>
 * <li><b>BAR layout</b> (QEMU's): BAR1 = MSI-X table (0) and PBA (half the
 *     BAR), 32-bit, 4 KiB; BAR4/5 = 64-bit prefetchable 16 KiB with common
 *     config 0x0000, ISR 0x1000, device config 0x2000, notify 0x3000
 *     (multiplier 4, notify_off = queue index).</li>
 * <li><b>Kicks</b>: a notify write signals the queue's ioeventfd when the
 *     transport's host notifier is enabled (the dataplane attaches it to an
 *     iothread with {@code VirtioDevice.attachHostNotifier}); otherwise
 *     ("direct" mode, the default) it schedules the queue's handler as a BH in
 *     the device's home context. Device code never runs on a vCPU thread.</li>
 * <li><b>Interrupts</b>: {@code notifyGuest} (main-loop path, through the
 *     sink from the home context) and {@code notifyGuestIrqfd} (the irqfd,
 *     from the calling iothread); guest notifiers are assigned and released
 *     with {@code setGuestNotifiers}.</li>
 * <li><b>Reset</b>: a status write of 0 runs {@code quiesceForReset} (the
 *     device drains; may poll), resets queues, features and transport state in
 *     the home context, and only then reads back 0; the vCPU that wrote 0 waits
 *     for it, bounded by a watchdog.</li>
 * <li><b>Bad guest input</b> marks the device DEVICE_NEEDS_RESET, stops every
 *     queue, raises a configuration interrupt and logs one WARN; nothing
 *     throws and guest memory is not written.</li>
 * </ul>
 */
package io.vblk.virtio;
