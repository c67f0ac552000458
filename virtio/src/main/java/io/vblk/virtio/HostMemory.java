package io.vblk.virtio;

import com.sun.jna.Pointer;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.util.internal.PlatformDependent;

/**
 * Raw access to host virtual addresses (what {@link GuestMemory#translate}
 * returns), little-endian whatever the host's byte order, through Netty's
 * {@link PlatformDependent} (sun.misc.Unsafe underneath). This is the
 * device-side equivalent of QEMU's {@code address_space_*_cached} helpers on a
 * mapped {@code MemoryRegionCache}: no bounds checks, so callers must have
 * translated the whole range first.
 *
 * <p>Plain (non-volatile) accesses: ordering against the driver is the
 * caller's business, with the {@link java.lang.invoke.VarHandle} fences the
 * virtio specification asks for.
 */
public final class HostMemory {
    private static final boolean BIG_ENDIAN = PlatformDependent.BIG_ENDIAN_NATIVE_ORDER;
    /** Whether Netty can build a ByteBuf straight from an address (needs reflective access to DirectByteBuffer). */
    private static final boolean NETTY_WRAPS_ADDRESSES = PlatformDependent.hasDirectBufferNoCleanerConstructor();

    private HostMemory() {
    }

    /**
     * Fails with a clear message when Netty cannot use sun.misc.Unsafe: every
     * guest-memory access goes through it, and without it nothing works.
     */
    public static void requireUnsafe() {
        if (!PlatformDependent.hasUnsafe()) {
            throw new IllegalStateException("vblk needs sun.misc.Unsafe for guest memory access, but Netty reports "
                    + "it unavailable (PlatformDependent.hasUnsafe() == false). Do not set -Dio.netty.noUnsafe=true, "
                    + "and run on a JDK that ships the jdk.unsupported module.");
        }
    }

    public static int getU8(long address) {
        return PlatformDependent.getByte(address) & 0xff;
    }

    public static void putU8(long address, int value) {
        PlatformDependent.putByte(address, (byte) value);
    }

    public static short getShortLE(long address) {
        short v = PlatformDependent.getShort(address);
        return BIG_ENDIAN ? Short.reverseBytes(v) : v;
    }

    public static int getU16LE(long address) {
        return getShortLE(address) & 0xffff;
    }

    public static void putShortLE(long address, int value) {
        short v = (short) value;
        PlatformDependent.putShort(address, BIG_ENDIAN ? Short.reverseBytes(v) : v);
    }

    public static int getIntLE(long address) {
        int v = PlatformDependent.getInt(address);
        return BIG_ENDIAN ? Integer.reverseBytes(v) : v;
    }

    public static void putIntLE(long address, int value) {
        PlatformDependent.putInt(address, BIG_ENDIAN ? Integer.reverseBytes(value) : value);
    }

    public static long getLongLE(long address) {
        long v = PlatformDependent.getLong(address);
        return BIG_ENDIAN ? Long.reverseBytes(v) : v;
    }

    public static void putLongLE(long address, long value) {
        PlatformDependent.putLong(address, BIG_ENDIAN ? Long.reverseBytes(value) : value);
    }

    public static void copy(long srcAddress, long dstAddress, long length) {
        PlatformDependent.copyMemory(srcAddress, dstAddress, length);
    }

    public static void copyToArray(long srcAddress, byte[] dst, int dstIndex, int length) {
        PlatformDependent.copyMemory(srcAddress, dst, dstIndex, length);
    }

    public static void copyFromArray(byte[] src, int srcIndex, long dstAddress, int length) {
        PlatformDependent.copyMemory(src, srcIndex, dstAddress, length);
    }

    public static void fill(long address, long length, byte value) {
        PlatformDependent.setMemory(address, length, value);
    }

    /**
     * A Netty buffer over {@code length} bytes at a host address, readable
     * from index 0 to {@code length}. Releasing it never frees the memory.
     *
     * <p>Byte order: a ByteBuf is big-endian by default and
     * {@code ByteBuf.order(...)} is deprecated; virtio structures are
     * little-endian, so read them with the {@code *LE} accessors
     * ({@code getShortLE}, {@code getIntLE}, {@code getLongLE}, ...).
     *
     * <p>Netty can wrap a raw address only with reflective access to
     * {@code DirectByteBuffer}'s constructor ({@code --add-opens
     * java.base/java.nio=ALL-UNNAMED -Dio.netty.tryReflectionSetAccessible=true});
     * without it the buffer is made by JNI's {@code NewDirectByteBuffer}
     * (through JNA) and wrapped. Either way nothing is copied.
     * Allocates two small objects: not for per-request hot paths.
     */
    public static ByteBuf wrap(long address, int length) {
        if (length < 0) {
            throw new IllegalArgumentException("negative length " + length);
        }
        if (NETTY_WRAPS_ADDRESSES) {
            return Unpooled.wrappedBuffer(address, length, false);
        }
        if (length == 0) {
            return Unpooled.EMPTY_BUFFER;
        }
        return Unpooled.wrappedBuffer(new Pointer(address).getByteBuffer(0, length));
    }
}
