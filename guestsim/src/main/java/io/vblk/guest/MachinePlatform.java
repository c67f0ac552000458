package io.vblk.guest;

import io.vblk.aio.MainLoop;
import io.vblk.firmware.Platform;
import io.vblk.virtio.GuestMemory;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;
import java.util.function.LongSupplier;

/**
 * The hardware one vCPU sees. Port I/O and MMIO to devices run in the main
 * loop and the vCPU waits for them, as an MMIO exit is handled under QEMU's
 * BQL; doorbell writes (ioeventfds) are delivered from the vCPU thread
 * directly, as KVM does. RAM accesses go straight to guest memory. Every
 * access and wait is a point where a stop request kicks the vCPU out.
 */
public final class MachinePlatform implements Platform {
    static final int COM1_LSR = Platform.SERIAL_PORT + 5;
    /** Reset control register: writing 0x6 or 0xE asks for a system reset (PIIX/ICH "RST_CNT"). */
    public static final int RESET_CONTROL_PORT = 0xcf9;

    private final String name;
    private final MainLoop loop;
    private final PciHost pci;
    private final GuestMemory ram;
    private final SerialConsole serial;
    private final InterruptController.Lapic lapic;
    private final IntConsumer debugExit;
    private final Runnable resetRequest;
    private volatile boolean closing;
    private volatile Runnable doorbellHook;

    MachinePlatform(String name, MainLoop loop, PciHost pci, GuestMemory ram, SerialConsole serial,
                    InterruptController.Lapic lapic, IntConsumer debugExit, Runnable resetRequest) {
        this.name = name;
        this.loop = loop;
        this.pci = pci;
        this.ram = ram;
        this.serial = serial;
        this.lapic = lapic;
        this.debugExit = debugExit;
        this.resetRequest = resetRequest;
    }

    /** The interrupts routed to this vCPU. */
    public InterruptLine interrupts() {
        return lapic;
    }

    public GuestMemory memory() {
        return ram;
    }

    void close() {
        closing = true;
    }

    /**
     * Test seam, a breakpoint: runs {@code hook} once on this vCPU just before
     * its next doorbell write reaches the device, so a host-side operation can be
     * placed exactly between a driver's setup and its first kick.
     */
    public void setDoorbellHook(Runnable hook) {
        doorbellHook = hook;
    }

    private void checkStop() {
        lapic.checkpoint();
    }

    /** Runs a device access in the main loop and waits for it (the BQL). */
    private long inMainLoop(String what, LongSupplier access) {
        CompletableFuture<Long> f = loop.submit(what, access::getAsLong);
        for (;;) {
            try {
                return f.get(50, TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                if (closing) {
                    throw new VcpuStoppedException(name);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new VcpuStoppedException(name);
            } catch (ExecutionException e) {
                Throwable c = e.getCause();
                throw c instanceof RuntimeException ? (RuntimeException) c : new IllegalStateException(c);
            }
        }
    }

    @Override
    public int in(int port, int size) {
        checkStop();
        if (pci.handlesPort(port)) {
            return (int) inMainLoop("pci config read", () -> pci.portRead(port, size));
        }
        if (port == COM1_LSR) {
            return 0x60; // transmitter empty: a polling UART driver may always send
        }
        return size == 4 ? -1 : (1 << (8 * size)) - 1;
    }

    @Override
    public void out(int port, int size, int value) {
        checkStop();
        if (port == Platform.SERIAL_PORT) {
            serial.write(value & 0xff);
        } else if (port == Platform.DEBUG_EXIT_PORT) {
            debugExit.accept(value & 0xff);
        } else if (port == RESET_CONTROL_PORT && (value & 0x4) != 0) {
            resetRequest.run();
            throw new VcpuStoppedException(name); // the guest asked to reset: it runs no further
        } else if (pci.handlesPort(port)) {
            inMainLoop("pci config write", () -> {
                pci.portWrite(port, size, value);
                return 0;
            });
        }
    }

    @Override
    public long mmioRead(long address, int size) {
        checkStop();
        PciHost.Window w = pci.decode(address);
        if (w == null) {
            return -1L;
        }
        long off = address - w.start();
        return inMainLoop("mmio read", () -> w.fn().mmioRead(w.bar(), off, size));
    }

    @Override
    public void mmioWrite(long address, int size, long value) {
        checkStop();
        PciHost.Window w = pci.decode(address);
        if (w == null) {
            return;
        }
        long off = address - w.start();
        if (w.fn().isDoorbell(w.bar(), off)) {
            Runnable hook = doorbellHook;
            if (hook != null) {
                doorbellHook = null;
                hook.run();
            }
            w.fn().mmioWrite(w.bar(), off, size, value);
            return;
        }
        inMainLoop("mmio write", () -> {
            w.fn().mmioWrite(w.bar(), off, size, value);
            return 0;
        });
    }

    @Override
    public int ramRead8(long gpa) {
        lapic.checkpoint(); // a vCPU is kicked out of guest mode at any instruction, RAM reads included
        return ram.readU8(gpa);
    }

    @Override
    public int ramRead16(long gpa) {
        lapic.checkpoint(); // a vCPU is kicked out of guest mode at any instruction, RAM reads included
        return ram.readU16(gpa);
    }

    @Override
    public int ramRead32(long gpa) {
        lapic.checkpoint(); // a vCPU is kicked out of guest mode at any instruction, RAM reads included
        return (int) ram.readU32(gpa);
    }

    @Override
    public long ramRead64(long gpa) {
        lapic.checkpoint(); // a vCPU is kicked out of guest mode at any instruction, RAM reads included
        return ram.readU64(gpa);
    }

    @Override
    public void ramWrite8(long gpa, int value) {
        ram.writeU8(gpa, value);
    }

    @Override
    public void ramWrite16(long gpa, int value) {
        ram.writeU16(gpa, value);
    }

    @Override
    public void ramWrite32(long gpa, int value) {
        ram.writeU32(gpa, value & 0xffffffffL);
    }

    @Override
    public void ramWrite64(long gpa, long value) {
        ram.writeU64(gpa, value);
    }

    @Override
    public void ramRead(long gpa, byte[] dst, int off, int len) {
        ram.read(gpa, dst, off, len);
    }

    @Override
    public void ramWrite(long gpa, byte[] src, int off, int len) {
        ram.write(gpa, src, off, len);
    }

    @Override
    public long ramSize() {
        long size = 0;
        for (io.vblk.virtio.RamRegion r : ram.regions()) {
            size = Math.max(size, r.gpa() + r.size());
        }
        return size;
    }

    @Override
    public long nanoTime() {
        return System.nanoTime();
    }

    /** A BIOS-style delay; 0 is a pause instruction in a spin loop. Both are stop points. */
    @Override
    public void delayMicros(long micros) {
        checkStop();
        if (micros <= 0) {
            Thread.onSpinWait();
        } else {
            LockSupport.parkNanos(micros * 1000);
        }
    }
}
