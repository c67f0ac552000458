/**
 * The driver side of virtio for tests: what a guest writes into its RAM and
 * its device's registers, in one place for every module's tests (virtio,
 * dataplane, vhost, guestsim, the integration tests). Every ABI number comes
 * from main code ({@link io.vblk.virtio.VirtioRing},
 * {@link io.vblk.virtio.blk.VirtioBlkAbi}, {@link io.vblk.virtio.VirtioFeatures},
 * {@link io.vblk.virtio.VirtioStatus}, {@link io.vblk.virtio.VirtioPciRegs});
 * nothing here defines one.
 *
 * <ul>
 * <li>{@link io.vblk.testkit.GuestRing}: one split virtqueue (Linux's
 * virtio_ring.c): descriptor chains direct or indirect, avail ring with
 * release fence, kick suppression by flags or avail_event, used entries,
 * used_event re-arming, and raw writers for malformed input.</li>
 * <li>{@link io.vblk.testkit.PciDriver}: a virtio-pci driver
 * (virtio_pci_modern.c): BAR assignment, capability walk, common config,
 * notify, ISR, device config, MSI-X table and PBA, the PCI_CFG window.</li>
 * <li>{@link io.vblk.testkit.BlkDriver}: a virtio-blk driver in SeaBIOS's and
 * Linux's flavours, requests laid out in chosen segmentations, submitted,
 * kicked and awaited by interrupt or polling.</li>
 * <li>{@link io.vblk.testkit.BlkHeaders}: request headers and
 * DISCARD/WRITE_ZEROES segments.</li>
 * <li>{@link io.vblk.testkit.Irqchip}: the interrupt controller the device
 * signals (MSI, irqfds, INTx) and a guest thread waits on.</li>
 * <li>{@link io.vblk.testkit.Spin}, {@link io.vblk.testkit.Bytes}: bounded
 * spinning and byte patterns.</li>
 * </ul>
 */
package io.vblk.testkit;
