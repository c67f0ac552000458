package io.vblk.vhost;

import java.nio.file.Path;
import java.time.Duration;

import com.sun.jna.Memory;

import io.vblk.aio.EventNotifier;
import io.vblk.aio.LibC;
import io.vblk.testkit.BlkHeaders;
import io.vblk.testkit.GuestRing.Buf;
import io.vblk.testkit.GuestRing;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.RamRegion;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * A bare vhost-user front-end for protocol tests: guest RAM in a memfd, one
 * split ring of 16 entries written by the test kit's {@link GuestRing}, kick
 * and call eventfds, requests of three descriptors (header, data, status).
 * Layout (guest-physical): descriptors 0x1000, avail 0x2000, used 0x3000,
 * headers 0x4000 + 32 * slot, data 0x10000 + 0x1000 * slot. The socket side
 * is {@link VhostUserClient}'s.
 */
final class TestFrontend implements AutoCloseable {
    static final int QSIZE = 16;
    static final long DESC = 0x1000;
    static final long AVAIL = 0x2000;
    static final long USED = 0x3000;
    static final long HDR = 0x4000;
    static final long DATA = 0x10000;
    static final long RAM = 1L << 20;

    final RamRegion ram = RamRegion.memfd("test-frontend-ram", 0, RAM);
    final GuestMemory mem = new GuestMemory(ram);
    final EventNotifier kick;
    final EventNotifier call;
    final GuestRing ring = GuestRing.at(mem, QSIZE, DESC, AVAIL, USED);
    final VhostUserClient client;
    private final int epfd;
    private final Memory events = new Memory(LibC.EPOLL_EVENT_SIZE);

    TestFrontend(Path sock) {
        this(sock, new EventNotifier(), new EventNotifier());
    }

    /** With kick and call descriptors of the test's choosing (blocking or saturated eventfds); they become ours. */
    TestFrontend(Path sock, EventNotifier kick, EventNotifier call) {
        this.kick = kick;
        this.call = call;
        client = VhostUserClient.connect(sock, Duration.ofSeconds(30));
        epfd = LibC.check(LibC.epoll_create1(LibC.EPOLL_CLOEXEC), "epoll_create1");
        Memory ev = new Memory(LibC.EPOLL_EVENT_SIZE);
        ev.setInt(0, LibC.EPOLLIN);
        ev.setLong(4, 1);
        LibC.check(LibC.epoll_ctl(epfd, LibC.EPOLL_CTL_ADD, call.fd(), ev), "epoll_ctl");
    }

    /** The connect sequence QEMU 7.2 sends, with REPLY_ACK on afterwards. */
    void negotiate() {
        client.getU64(VhostUserProtocol.GET_FEATURES);
        long pf = client.getU64(VhostUserProtocol.GET_PROTOCOL_FEATURES);
        client.setU64(VhostUserProtocol.SET_PROTOCOL_FEATURES, pf & VhostUserBlkFrontend.WANTED_PROTOCOL_FEATURES);
        client.setReplyAck(true);
        client.request(VhostUserProtocol.SET_OWNER);
    }

    void addMemory() {
        client.addMemReg(0, RAM, ram.hostAddress(), 0, ram.fd());
    }

    long uaddr(long gpa) {
        return ram.hostAddress() + gpa;
    }

    /** NUM, BASE, ADDR, CALL, KICK, ENABLE for ring {@code q} after SET_FEATURES. */
    void startRing(int q, int base) {
        client.setU64(VhostUserProtocol.SET_FEATURES, VirtioFeatures.VERSION_1 | VhostUserProtocol.F_PROTOCOL_FEATURES);
        client.setState(VhostUserProtocol.SET_VRING_NUM, q, QSIZE);
        client.setState(VhostUserProtocol.SET_VRING_BASE, q, base);
        client.setVringAddr(q, uaddr(DESC), uaddr(USED), uaddr(AVAIL));
        client.setU64(VhostUserProtocol.SET_VRING_CALL, q, call.fd());
        client.setU64(VhostUserProtocol.SET_VRING_KICK, q, kick.fd());
        client.setState(VhostUserProtocol.SET_VRING_ENABLE, q, 1);
    }

    /** Queues a request of {@code type} for {@code sector} (512 bytes) in slot {@code slot} and kicks. */
    void submit(int slot, int type, long sector) {
        submit(slot, type, sector, VirtioBlkAbi.SECTOR);
    }

    /** The same with {@code len} data bytes (up to 0x1000 fit a slot's buffer unless the test means overflow). */
    void submit(int slot, int type, long sector, int len) {
        long h = HDR + 32L * slot;
        BlkHeaders.writeOuthdr(mem, h, type, sector);
        mem.writeU8(h + VirtioBlkAbi.OUTHDR_SIZE, BlkHeaders.STATUS_UNSET);
        ring.add(new Buf(h, VirtioBlkAbi.OUTHDR_SIZE, false),
                new Buf(DATA + 0x1000L * slot, len, type == VirtioBlkAbi.T_IN || type == VirtioBlkAbi.T_GET_ID),
                new Buf(h + VirtioBlkAbi.OUTHDR_SIZE, 1, true));
        ring.publish();
        kick.set();
    }

    /** Waits (bounded) until the used ring holds {@code n} entries, for a call descriptor that cannot be waited on. */
    boolean awaitUsed(int n, Duration bound) {
        long deadline = System.nanoTime() + bound.toNanos();
        while (usedIdx() != n) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            Thread.onSpinWait();
        }
        return true;
    }

    int status(int slot) {
        return mem.readU8(HDR + 32L * slot + VirtioBlkAbi.OUTHDR_SIZE);
    }

    long data(int slot) {
        return mem.readU64(DATA + 0x1000L * slot);
    }

    int usedIdx() {
        return ring.usedIdx();
    }

    /** Waits up to {@code bound} for the call eventfd; consumes it. */
    boolean awaitCall(Duration bound) {
        int n = LibC.epoll_wait(epfd, events, 1, (int) bound.toMillis());
        return n > 0 && call.testAndClear();
    }

    @Override
    public void close() {
        client.close();
        LibC.close(epfd);
        kick.close();
        call.close();
        ram.close();
    }
}
