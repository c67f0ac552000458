package io.vblk.firmware;

/** A platform with nothing on it, for tests to override pieces of. */
class NullPlatform implements Platform {
    @Override
    public int in(int port, int size) {
        return -1;
    }

    @Override
    public void out(int port, int size, int value) {
    }

    @Override
    public long mmioRead(long address, int size) {
        return -1;
    }

    @Override
    public void mmioWrite(long address, int size, long value) {
    }

    @Override
    public int ramRead8(long gpa) {
        return 0;
    }

    @Override
    public int ramRead16(long gpa) {
        return 0;
    }

    @Override
    public int ramRead32(long gpa) {
        return 0;
    }

    @Override
    public long ramRead64(long gpa) {
        return 0;
    }

    @Override
    public void ramWrite8(long gpa, int value) {
    }

    @Override
    public void ramWrite16(long gpa, int value) {
    }

    @Override
    public void ramWrite32(long gpa, int value) {
    }

    @Override
    public void ramWrite64(long gpa, long value) {
    }

    @Override
    public void ramRead(long gpa, byte[] dst, int off, int len) {
    }

    @Override
    public void ramWrite(long gpa, byte[] src, int off, int len) {
    }

    @Override
    public long ramSize() {
        return 0;
    }

    @Override
    public long nanoTime() {
        return System.nanoTime();
    }

    @Override
    public void delayMicros(long micros) {
    }
}
