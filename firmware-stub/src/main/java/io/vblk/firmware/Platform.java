package io.vblk.firmware;

/**
 * Everything the firmware can touch: the machine as hardware. Port I/O
 * (PCI configuration through 0xCF8/0xCFC, the COM1 serial port, a debug-exit
 * port), memory-mapped I/O, guest RAM and a clock. The firmware never sees
 * a device object (DESIGN.md, rule 1), so the same firmware boots any device
 * that behaves like virtio-blk hardware.
 */
public interface Platform {
    /** COM1 transmit register: one byte per write. */
    int SERIAL_PORT = 0x3f8;
    /** Debug-exit port (like QEMU's isa-debug-exit): the firmware writes its verdict here. */
    int DEBUG_EXIT_PORT = 0x501;

    int in(int port, int size);

    void out(int port, int size, int value);

    long mmioRead(long address, int size);

    void mmioWrite(long address, int size, long value);

    int ramRead8(long gpa);

    int ramRead16(long gpa);

    int ramRead32(long gpa);

    long ramRead64(long gpa);

    void ramWrite8(long gpa, int value);

    void ramWrite16(long gpa, int value);

    void ramWrite32(long gpa, int value);

    void ramWrite64(long gpa, long value);

    void ramRead(long gpa, byte[] dst, int off, int len);

    void ramWrite(long gpa, byte[] src, int off, int len);

    long ramSize();

    /** Monotonic time in nanoseconds. */
    long nanoTime();

    /** Waits about {@code micros} microseconds: SeaBIOS's {@code usleep} between polls. */
    void delayMicros(long micros);
}
