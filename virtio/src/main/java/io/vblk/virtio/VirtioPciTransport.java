package io.vblk.virtio;

import static io.vblk.virtio.VirtioPciRegs.CAP_BAR;
import static io.vblk.virtio.VirtioPciRegs.CAP_CFG_TYPE;
import static io.vblk.virtio.VirtioPciRegs.CAP_COMMON_CFG;
import static io.vblk.virtio.VirtioPciRegs.CAP_DEVICE_CFG;
import static io.vblk.virtio.VirtioPciRegs.CAP_ID_MSIX;
import static io.vblk.virtio.VirtioPciRegs.CAP_ID_VNDR;
import static io.vblk.virtio.VirtioPciRegs.CAP_ISR_CFG;
import static io.vblk.virtio.VirtioPciRegs.CAP_LEN;
import static io.vblk.virtio.VirtioPciRegs.CAP_LENGTH;
import static io.vblk.virtio.VirtioPciRegs.CAP_NOTIFY_CFG;
import static io.vblk.virtio.VirtioPciRegs.CAP_OFFSET;
import static io.vblk.virtio.VirtioPciRegs.CAP_PCI_CFG;
import static io.vblk.virtio.VirtioPciRegs.COMMAND;
import static io.vblk.virtio.VirtioPciRegs.COMMAND_INTX_DISABLE;
import static io.vblk.virtio.VirtioPciRegs.COMMAND_MASTER;
import static io.vblk.virtio.VirtioPciRegs.COMMAND_MEMORY;

import java.util.concurrent.atomic.AtomicIntegerArray;

import io.vblk.aio.AioContext;
import io.vblk.aio.EventNotifier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A modern (virtio 1.x only) virtio-pci function around one
 * {@link VirtioDevice}: QEMU's {@code VirtIOPCIProxy} (hw/virtio/virtio-pci.c)
 * with {@code disable-legacy=on}. The machine's PCI bus calls the four entry
 * points ({@link #configRead}, {@link #configWrite}, {@link #mmioRead},
 * {@link #mmioWrite}) from vCPU threads; that is all a guest can touch.
 *
 * <h2>Identity</h2>
 * Vendor 0x1AF4, device 0x1040 + virtio device id (0x1042 for block),
 * revision 1, subsystem vendor 0x1AF4, subsystem id = virtio device id, class
 * code by device type ({@link #pciClassCode}), interrupt pin INTA#.
 *
 * <h2>BAR layout (QEMU's)</h2>
 * <ul>
 * <li>BAR1: 32-bit memory BAR, MSI-X table at 0 and PBA at half its size
 *     (4 KiB for up to 128 vectors). One vector per queue plus one for
 *     configuration changes.</li>
 * <li>BAR4 (with BAR5 as its upper half): 64-bit prefetchable memory BAR of
 *     16 KiB holding the virtio structures, 4 KiB each: common configuration
 *     at 0x0000, ISR at 0x1000, device configuration at 0x2000, notifications
 *     at 0x3000 with {@code notify_off_multiplier} 4 and queue_notify_off =
 *     queue index (so up to 1024 queues).</li>
 * <li>BAR0, BAR2, BAR3: not implemented (sizing reads 0).</li>
 * </ul>
 * Capabilities: COMMON, ISR, DEVICE, NOTIFY, PCI_CFG (the config-space window
 * SeaBIOS uses to reach a BAR above 4 GiB), then MSI-X.
 *
 * <h2>Kicks</h2>
 * A write to queue q's notify address ({@link #isDoorbell} tells the machine
 * which writes those are) either signals q's host notifier, an
 * {@link EventNotifier} (the ioeventfd, served by whatever context
 * {@link VirtioDevice#attachHostNotifier} put it in), or, in direct mode (the
 * default, no ioeventfd), asks the device to run the queue handler as a
 * bottom half in its home context ({@link VirtioDevice#kick}). Switch with
 * {@link #setHostNotifierEnabled} (QEMU's {@code virtio_bus_set_host_notifier}).
 * Neither path runs device code on the vCPU.
 *
 * <h2>Interrupts</h2>
 * Every interrupt first sets its ISR bit (queue 0x1, configuration 0x2);
 * reading the ISR returns and clears it (deasserting INTx). Then, as in QEMU,
 * one of two paths:
 * <ul>
 * <li>{@link #raiseQueueInterrupt}/{@link #raiseConfigInterrupt}
 *     ({@code virtio_notify}, {@code virtio_notify_config}): delivered from
 *     the device's home context (a BH carries it there from another thread)
 *     to the {@link InterruptSink}: the mapped MSI-X vector's message, nothing
 *     for NO_VECTOR, pending while masked; without MSI-X, INTx unless disabled
 *     in the command register.</li>
 * <li>{@link #signalGuestNotifier} ({@code virtio_notify_irqfd}): the queue's
 *     vector is signalled on its irqfd from the calling thread (an iothread).
 *     {@link #setGuestNotifiers} announces and withdraws the irqfds to the
 *     sink (KVM_IRQFD assign/deassign), so a machine that unwires them on
 *     release loses a late signal exactly as a real host does (seed 001).</li>
 * </ul>
 * The default sink signals {@link #guestNotifier}{@code (vector)} and
 * {@link #intxNotifier()}, eventfds a test (or a simple machine) waits on.
 *
 * <h2>Threads</h2>
 * Register accesses may come from vCPU threads or from the main loop (the
 * machine's "BQL"); the register state is guarded by this object's monitor.
 * No device hook runs on the calling thread unless it is the device's home
 * thread. A status write of 0 from a vCPU waits for the reset to complete in
 * the home context (see {@link VirtioDevice}).
 *
 * <p>Collaborators, one concept each: {@link VirtioPciCommonCfg} (the common
 * configuration register file), {@link VirtioPciNotify} (the notification
 * region and host notifiers), {@link VirtioPciInterrupts} (ISR, INTx, MSI-X
 * delivery, guest notifiers), {@link PciConfigSpace} and {@link MsixTable}.
 * This class builds the function's identity and capabilities and decodes
 * configuration and BAR accesses to them.
 */
public final class VirtioPciTransport implements VirtioBus, NotifierBus, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioPciTransport.class);
    private static final boolean TRACE = LOG.isTraceEnabled();

    public static final int PCI_VENDOR_ID_REDHAT_QUMRANET = 0x1af4;
    public static final int PCI_DEVICE_ID_VIRTIO_10_BASE = 0x1040;
    public static final int MSIX_BAR = 1;
    public static final int VIRTIO_BAR = 4;
    public static final long VIRTIO_BAR_SIZE = 0x4000;
    public static final int COMMON_CFG_OFFSET = 0x0000;
    public static final int ISR_CFG_OFFSET = 0x1000;
    public static final int DEVICE_CFG_OFFSET = 0x2000;
    public static final int NOTIFY_CFG_OFFSET = 0x3000;
    public static final int REGION_SIZE = 0x1000;
    public static final int NOTIFY_OFF_MULTIPLIER = 4;
    /** Bytes of the common configuration structure (up to queue_device). */
    public static final int COMMON_CFG_LENGTH = 0x38;

    private final VirtioDevice device;
    private final String name;
    private final AioContext home;
    private final int numQueues;
    private final PciConfigSpace pci = new PciConfigSpace();
    private final MsixTable msix;
    private final int pciCfgCap;
    private final int msixCap;
    private final VirtioPciNotify notify;
    private final VirtioPciInterrupts irq;

    private final AtomicIntegerArray vectors; // per queue, then the config vector at numQueues
    private final VirtioPciCommonCfg common;

    /** Builds the function and plugs {@code device} into it. */
    public VirtioPciTransport(VirtioDevice device) {
        this.device = device;
        this.name = device.name();
        this.home = device.homeContext();
        this.numQueues = device.numQueues();
        if (numQueues > REGION_SIZE / NOTIFY_OFF_MULTIPLIER) {
            throw new IllegalArgumentException(name + ": at most " + REGION_SIZE / NOTIFY_OFF_MULTIPLIER + " queues");
        }
        if (device.configSize() > REGION_SIZE) {
            throw new IllegalArgumentException(name + ": device config larger than " + REGION_SIZE);
        }
        this.vectors = new AtomicIntegerArray(numQueues + 1);
        this.notify = new VirtioPciNotify(device);
        this.msix = new MsixTable(name, numQueues + 1);
        this.common = new VirtioPciCommonCfg(device, vectors, msix.vectors());
        try {
            this.irq = new VirtioPciInterrupts(this, name, home, numQueues, msix, vectors);
        } catch (RuntimeException e) {
            msix.close();
            throw e;
        }

        int id = device.deviceId();
        pci.setU16(VirtioPciRegs.VENDOR_ID, PCI_VENDOR_ID_REDHAT_QUMRANET);
        pci.setU16(VirtioPciRegs.DEVICE_ID, PCI_DEVICE_ID_VIRTIO_10_BASE + id);
        pci.setU8(VirtioPciRegs.REVISION_ID, 1);
        int cls = pciClassCode(id);
        pci.setU8(VirtioPciRegs.CLASS_PROG, cls);
        pci.setU8(VirtioPciRegs.CLASS_PROG + 1, cls >>> 8);
        pci.setU8(VirtioPciRegs.CLASS_PROG + 2, cls >>> 16);
        pci.setU8(VirtioPciRegs.HEADER_TYPE, 0);
        pci.setU16(VirtioPciRegs.SUBSYSTEM_VENDOR_ID, PCI_VENDOR_ID_REDHAT_QUMRANET);
        pci.setU16(VirtioPciRegs.SUBSYSTEM_ID, id);
        pci.setU8(VirtioPciRegs.INTERRUPT_PIN, 1);
        pci.setWritable(COMMAND, 2, COMMAND_MEMORY | COMMAND_MASTER | COMMAND_INTX_DISABLE);
        pci.setWritable(VirtioPciRegs.CACHE_LINE_SIZE, 1, 0xff);
        pci.setWritable(VirtioPciRegs.INTERRUPT_LINE, 1, 0xff);
        pci.defineMemoryBar(MSIX_BAR, msix.barSize(), false, false);
        pci.defineMemoryBar(VIRTIO_BAR, VIRTIO_BAR_SIZE, true, true);

        addVirtioCap(CAP_COMMON_CFG, 16, COMMON_CFG_OFFSET, REGION_SIZE);
        addVirtioCap(CAP_ISR_CFG, 16, ISR_CFG_OFFSET, REGION_SIZE);
        addVirtioCap(CAP_DEVICE_CFG, 16, DEVICE_CFG_OFFSET, REGION_SIZE);
        int notify = addVirtioCap(CAP_NOTIFY_CFG, 20, NOTIFY_CFG_OFFSET, REGION_SIZE);
        pci.setU32(notify + VirtioPciRegs.NOTIFY_CAP_MULT, NOTIFY_OFF_MULTIPLIER);
        pciCfgCap = addVirtioCap(CAP_PCI_CFG, 20, 0, 0);
        pci.setU8(pciCfgCap + CAP_BAR, 0);
        pci.setWritable(pciCfgCap + CAP_BAR, 1, 0xff);
        pci.setWritable(pciCfgCap + CAP_OFFSET, 4, 0xffff_ffffL);
        pci.setWritable(pciCfgCap + CAP_LENGTH, 4, 0xffff_ffffL);
        pci.setWritable(pciCfgCap + VirtioPciRegs.PCI_CFG_DATA, 4, 0xffff_ffffL);
        msixCap = pci.addCapability(CAP_ID_MSIX, 12);
        pci.setU16(msixCap + VirtioPciRegs.MSIX_FLAGS, msix.vectors() - 1);
        pci.setWritable(msixCap + VirtioPciRegs.MSIX_FLAGS, 2,
                VirtioPciRegs.MSIX_FLAGS_ENABLE | VirtioPciRegs.MSIX_FLAGS_MASKALL);
        pci.setU32(msixCap + VirtioPciRegs.MSIX_TABLE, msix.tableOffset() | MSIX_BAR);
        pci.setU32(msixCap + VirtioPciRegs.MSIX_PBA, msix.pbaOffset() | MSIX_BAR);
        pci.seal();

        device.plug(this);
    }

    private int addVirtioCap(int cfgType, int len, int offset, int length) {
        int cap = pci.addCapability(CAP_ID_VNDR, len);
        pci.setU8(cap + CAP_LEN, len);
        pci.setU8(cap + CAP_CFG_TYPE, cfgType);
        pci.setU8(cap + CAP_BAR, VIRTIO_BAR);
        pci.setU32(cap + CAP_OFFSET, offset);
        pci.setU32(cap + CAP_LENGTH, length);
        return cap;
    }

    /**
     * The 24-bit PCI class code (class, subclass, prog-if) QEMU gives each
     * virtio device type: block is mass storage/SCSI (0x010000), net is
     * Ethernet (0x020000), console is other communication (0x078000), the
     * rest "other" (0xff0000).
     */
    public static int pciClassCode(int virtioDeviceId) {
        switch (virtioDeviceId) {
            case VirtioDevice.ID_BLOCK:
            case VirtioDevice.ID_SCSI:
                return 0x010000;
            case VirtioDevice.ID_NET:
                return 0x020000;
            case VirtioDevice.ID_CONSOLE:
                return 0x078000;
            default:
                return 0xff0000;
        }
    }

    public VirtioDevice device() {
        return device;
    }

    // ------------------------------------------------------------------ PCI configuration space

    /** A configuration read (the bus's CF8/CFC or ECAM access) of 1, 2 or 4 bytes. */
    public int configRead(int offset, int size) {
        checkSize(size);
        if (overlaps(offset, size, pciCfgCap + VirtioPciRegs.PCI_CFG_DATA, 4)) {
            pciCfgWindow(false);
        }
        synchronized (this) {
            pci.setInterruptStatus(irq.intxAsserted());
            return pci.read(offset, size);
        }
    }

    /** A configuration write of 1, 2 or 4 bytes; read-only bits are kept. */
    public void configWrite(int offset, int size, int value) {
        checkSize(size);
        synchronized (this) {
            pci.write(offset, size, value);
            if (overlaps(offset, size, COMMAND, 2)) {
                irq.setIntxDisabled((pci.command() & COMMAND_INTX_DISABLE) != 0);
            }
            if (overlaps(offset, size, msixCap + VirtioPciRegs.MSIX_FLAGS, 2)) {
                int flags = pci.u16(msixCap + VirtioPciRegs.MSIX_FLAGS);
                msix.setControl((flags & VirtioPciRegs.MSIX_FLAGS_ENABLE) != 0,
                        (flags & VirtioPciRegs.MSIX_FLAGS_MASKALL) != 0, irq.unmaskDelivery());
            }
        }
        if (overlaps(offset, size, pciCfgCap + VirtioPciRegs.PCI_CFG_DATA, 4)) {
            pciCfgWindow(true);
        }
    }

    /**
     * VIRTIO_PCI_CAP_PCI_CFG: an access to pci_cfg_data performs a
     * {@code cap.length}-byte access at {@code cap.offset} of BAR
     * {@code cap.bar}. Lengths other than 1, 2, 4 or a misaligned offset are
     * ignored (driver error). The BAR access runs outside the transport lock: a
     * status write of 0 through the window waits for the reset, which needs it.
     */
    private void pciCfgWindow(boolean write) {
        int bar;
        long off;
        int len;
        int data = pciCfgCap + VirtioPciRegs.PCI_CFG_DATA;
        long value;
        synchronized (this) {
            bar = pci.u8(pciCfgCap + CAP_BAR);
            off = pci.u32(pciCfgCap + CAP_OFFSET) & 0xffff_ffffL;
            len = pci.u32(pciCfgCap + CAP_LENGTH);
            value = pci.u32(data) & 0xffff_ffffL;
        }
        if ((len != 1 && len != 2 && len != 4) || off % len != 0 || (bar != VIRTIO_BAR && bar != MSIX_BAR)) {
            LOG.debug("{}: PCI_CFG access ignored (bar {}, offset {}, length {})", name, bar, off, len);
            return;
        }
        if (write) {
            mmioWrite(bar, off, len, value & (len == 4 ? 0xffff_ffffL : (1L << (8 * len)) - 1));
        } else {
            int v = (int) mmioRead(bar, off, len);
            synchronized (this) {
                pci.setU32(data, v);
            }
        }
    }

    private static boolean overlaps(int off, int size, int start, int len) {
        return off < start + len && off + size > start;
    }

    private static void checkSize(int size) {
        if (size != 1 && size != 2 && size != 4) {
            throw new IllegalArgumentException("PCI config access of " + size + " bytes");
        }
    }

    /** The address the guest assigned to {@code bar} (0 = unassigned). For the bus's address decoding. */
    public synchronized long barAddress(int bar) {
        return pci.barAddress(bar);
    }

    /** The size of {@code bar}, 0 if not implemented. */
    public long barSize(int bar) {
        return pci.barSize(bar);
    }

    /** Whether the guest enabled memory decoding (command register bit 1): the bus routes BAR accesses only then. */
    public synchronized boolean memoryEnabled() {
        return (pci.command() & COMMAND_MEMORY) != 0;
    }

    // ------------------------------------------------------------------ BAR accesses

    /** A read of {@code size} bytes (1, 2, 4, 8) at {@code offset} inside {@code bar}. */
    public long mmioRead(int bar, long offset, int size) {
        if (bar == MSIX_BAR) {
            return msix.read(offset, size);
        }
        if (bar != VIRTIO_BAR || offset < 0 || offset + size > VIRTIO_BAR_SIZE) {
            LOG.debug("{}: read of BAR{} offset {} ignored", name, bar, offset);
            return 0;
        }
        int region = (int) (offset / REGION_SIZE) * REGION_SIZE;
        int off = (int) (offset % REGION_SIZE);
        long v;
        switch (region) {
            case COMMON_CFG_OFFSET:
                v = common.read(off);
                break;
            case ISR_CFG_OFFSET:
                v = off == 0 ? irq.readIsr() : 0;
                break;
            case DEVICE_CFG_OFFSET:
                v = device.readConfig(off, size);
                break;
            default:
                v = 0; // notification region: write-only
                break;
        }
        return size == 8 ? v : v & ((1L << (8 * size)) - 1);
    }

    /** A write of {@code size} bytes (1, 2, 4, 8) at {@code offset} inside {@code bar}. */
    public void mmioWrite(int bar, long offset, int size, long value) {
        if (bar == MSIX_BAR) {
            msix.write(offset, size, value, irq.unmaskDelivery());
            return;
        }
        if (bar != VIRTIO_BAR || offset < 0 || offset + size > VIRTIO_BAR_SIZE) {
            LOG.debug("{}: write to BAR{} offset {} ignored", name, bar, offset);
            return;
        }
        int region = (int) (offset / REGION_SIZE) * REGION_SIZE;
        int off = (int) (offset % REGION_SIZE);
        switch (region) {
            case COMMON_CFG_OFFSET:
                common.write(off, size, value);
                break;
            case DEVICE_CFG_OFFSET:
                device.writeConfig(off, size, value);
                break;
            case NOTIFY_CFG_OFFSET:
                notify.write(off);
                break;
            default:
                break; // ISR is read-only
        }
    }

    /**
     * Whether a write at ({@code bar}, {@code offset}) is a kick that goes to an
     * ioeventfd, so the machine may deliver it from the vCPU thread without
     * emulating the access in its main loop, as KVM does. (Direct-mode kicks are
     * safe from any thread too, but are register emulation.)
     */
    public boolean isDoorbell(int bar, long offset) {
        if (bar != VIRTIO_BAR || offset < NOTIFY_CFG_OFFSET || offset >= NOTIFY_CFG_OFFSET + REGION_SIZE) {
            return false;
        }
        return notify.isDoorbell(offset - NOTIFY_CFG_OFFSET);
    }

    // ------------------------------------------------------------------ host notifiers (ioeventfd)

    /**
     * Switches queue {@code q}'s kicks between an ioeventfd (true) and direct
     * dispatch into the device's home context (false): QEMU's
     * {@code virtio_bus_set_host_notifier}. A kick racing with the switch is
     * not lost: the route sends it either to direct dispatch or to the new
     * eventfd. The new eventfd starts clear (QEMU initialises it signalled):
     * the kick that makes its server look at the ring once — for requests a
     * direct dispatch saw before DRIVER_OK and left — is the caller's, as QEMU's
     * {@code virtio_blk_start_ioeventfd} sets it (bug 015); switching back hands a pending
     * kick to direct dispatch and closes the eventfd, whose handler must have
     * been detached ({@link VirtioDevice#detachHostNotifier}). Call in the home
     * thread (or holding the home context's lock).
     */
    @Override
    public void setHostNotifierEnabled(int q, boolean enabled) {
        notify.setHostNotifierEnabled(q, enabled);
    }

    public boolean isHostNotifierEnabled(int q) {
        return notify.isHostNotifierEnabled(q);
    }

    // ------------------------------------------------------------------ interrupts (VirtioBus)

    /**
     * Where interrupts go (see {@link InterruptSink}); set by the machine
     * before the guest runs. The default signals {@link #guestNotifier} for MSI
     * and {@link #intxNotifier} for INTx, so a test can wait on eventfds.
     */
    public void setInterruptSink(InterruptSink s) {
        irq.setSink(s);
    }

    @Override
    public void raiseQueueInterrupt(int queueIndex) {
        irq.raise(VirtioPciRegs.ISR_QUEUE, queueIndex);
    }

    @Override
    public void raiseConfigInterrupt() {
        irq.raise(VirtioPciRegs.ISR_CONFIG, numQueues);
    }

    /**
     * QEMU's {@code virtio_notify_irqfd}: with MSI-X, the queue's vector is
     * signalled on its irqfd from this thread (pending instead while masked);
     * with INTx, the guest notifier is served by the home context, and a signal
     * while guest notifiers are released is lost, as in QEMU.
     */
    @Override
    public void signalGuestNotifier(int queueIndex) {
        irq.signalGuestNotifier(queueIndex);
    }

    /**
     * Assigns (true) or releases (false) the guest notifiers: QEMU's
     * {@code set_guest_notifiers}. With MSI-X enabled, every vector mapped to a
     * queue or to configuration changes is announced to the
     * {@link InterruptSink} (irqfd assign) or withdrawn. The dataplane assigns
     * them before it starts and releases them last when it stops, after its
     * final notification went out (seed 001).
     */
    @Override
    public void setGuestNotifiers(boolean assign) {
        irq.setGuestNotifiers(assign);
    }

    public boolean guestNotifiersAssigned() {
        return irq.guestNotifiersAssigned();
    }

    /** How many irqfd signals were made while guest notifiers were released (each one lost on a real host). */
    public long signalsWhileReleased() {
        return irq.signalsWhileReleased();
    }

    /** The irqfd of MSI-X vector {@code vector}. */
    public EventNotifier guestNotifier(int vector) {
        return msix.notifier(vector);
    }

    /** The INTx line of the default interrupt sink, signalled when the device asserts it. */
    public EventNotifier intxNotifier() {
        return irq.intxNotifier();
    }

    public int msixVectors() {
        return msix.vectors();
    }

    /** The MSI-X vector mapped to queue {@code q} (NO_VECTOR if none). */
    public int queueVector(int q) {
        return vectors.get(q);
    }

    public int configVector() {
        return vectors.get(numQueues);
    }

    public boolean msixEnabled() {
        return msix.isEnabled();
    }

    /** Peeks at the ISR without clearing it (diagnostics; a guest read clears it). */
    public int isrStatus() {
        return irq.isrStatus();
    }

    // ------------------------------------------------------------------ reset

    @Override
    public void deviceReset() {
        common.reset();
        irq.deviceReset();
    }

    /**
     * The machine's reset of this function (QEMU's qdev reset): the device
     * resets synchronously, then the PCI header (command, BARs) and MSI-X state
     * return to power-on values. Home thread only.
     */
    public void systemReset() {
        device.resetNow();
        synchronized (this) {
            pci.reset();
            msix.reset();
            irq.systemReset();
        }
    }

    /** Releases the eventfds; host-notifier handlers must be detached and nothing may raise interrupts any more. */
    @Override
    public void close() {
        irq.closeBh();
        notify.close();
        msix.close();
        irq.closeIntx();
    }

    /** The function's state for a watchdog dump. */
    public String describe() {
        StringBuilder sb = new StringBuilder();
        synchronized (this) {
            sb.append(String.format("%s: virtio-pci BAR%d=0x%x BAR%d=0x%x command=0x%x msix=%s isr=0x%x "
                    + "guest_notifiers=%s (signals while released: %d) config_vector=%d%n", name, MSIX_BAR,
                    pci.barAddress(MSIX_BAR), VIRTIO_BAR, pci.barAddress(VIRTIO_BAR), pci.command(),
                    msix.isEnabled() ? "on" : "off", irq.isrStatus(), irq.guestNotifiersAssigned() ? "assigned"
                    : "released", irq.signalsWhileReleased(), vectors.get(numQueues)));
        }
        for (int q = 0; q < numQueues; q++) {
            sb.append(String.format("  vq%d: vector %d, kicks via %s%n", q, vectors.get(q),
                    isHostNotifierEnabled(q) ? "ioeventfd" : "direct BH"));
        }
        sb.append(device.describe());
        return sb.toString();
    }

    @Override
    public String toString() {
        return "VirtioPciTransport(" + name + ")";
    }
}
