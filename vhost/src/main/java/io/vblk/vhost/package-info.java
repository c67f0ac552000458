/**
 * vhost-user-blk: vblk as a block back-end real hypervisors use, and the
 * simulated machine as a front-end for any vhost-user-blk back-end.
 *
 * <h2>Where it sits</h2>
 * Its own Maven module between {@code dataplane} and {@code guestsim}
 * ({@code blockcore <- virtio <- dataplane <- vhost <- guestsim <- bench <- cli}):
 * the back-end needs the virtio-blk device and its dataplane; the machine
 * needs the front-end. Nothing below it knows about vhost-user; the only
 * generalisation it asked of them is {@link io.vblk.virtio.NotifierBus}
 * (the dataplane's view of a transport), {@code VirtQueue/VirtioDevice.setMemory}
 * (a memory table that changes) and {@code EventNotifier.adopt} (an eventfd
 * received from a peer).
 *
 * <h2>The back-end in three parts</h2>
 * {@link io.vblk.vhost.VhostUserDevice} ({@code VuDev}) assembles them:
 * <ol>
 * <li><b>Transport</b> — {@code VhostUserConnection} ({@code vu_dispatch},
 *     {@code vu_message_read}/{@code vu_send_reply}) over {@link io.vblk.vhost.UnixSocket}
 *     (SCM_RIGHTS) and {@link io.vblk.vhost.VhostUserMsg} (header, payload, descriptors):
 *     reads one whole message, refuses a header no handler may see, applies
 *     REPLY_ACK (a NEED_REPLY request gets a u64 ack; a request with a reply
 *     always gets one, empty when refused), writes the reply.</li>
 * <li><b>Message dispatch</b> — {@code VhostUserDispatcher} ({@code vu_process_message}):
 *     one {@code MessageHandler} per request code in a table built once, each
 *     declaring the payload size and descriptor count of its type, checked
 *     before it runs. Adding a message is adding one handler.</li>
 * <li><b>Ring state</b> — {@code VhostUserRings} and {@code VhostUserRing}
 *     ({@code VuVirtq}, {@code vu_set_vring_*_exec}): SET_VRING_* and
 *     GET_VRING_BASE turned into stop and start of the dataplane that serves
 *     the in-process device, with the {@code MemoryTable} ({@code VuDevRegion})
 *     the rings live in.</li>
 * </ol>
 *
 * <h2>Pieces and their QEMU / libvhost-user names</h2>
 * <table>
 * <caption>classes</caption>
 * <tr><th>class</th><th>QEMU / libvhost-user</th><th>what for</th></tr>
 * <tr><td>{@link io.vblk.vhost.VhostUserBlkServer}</td><td>vhost-user-blk export
 *     (block/export/vhost-user-blk-server.c)</td>
 *     <td>{@code vblk serve}: disk, IOThreads, VirtioBlk, dataplane</td></tr>
 * <tr><td>{@link io.vblk.vhost.VhostUserServer}</td><td>{@code VuServer} (util/vhost-user-server.c)</td>
 *     <td>listen, one front-end at a time, one message at a time</td></tr>
 * <tr><td>{@link io.vblk.vhost.VhostUserDevice}</td><td>{@code VuDev}</td>
 *     <td>the three parts together; the device's bus and the dataplane's notifier bus</td></tr>
 * <tr><td>{@code VhostUserConnection}</td><td>{@code vu_dispatch}, {@code vu_send_reply}</td>
 *     <td>one connection: message in, reply rules, reply out</td></tr>
 * <tr><td>{@code VhostUserDispatcher}, {@code MessageHandler}</td><td>{@code vu_process_message}</td>
 *     <td>the message table, payload and descriptor checks, session state</td></tr>
 * <tr><td>{@code VhostUserRings}, {@code VhostUserRing}</td><td>{@code VuVirtq}, {@code vu_set_vring_*_exec}</td>
 *     <td>ring state; dataplane start and stop</td></tr>
 * <tr><td>{@code MemoryTable}</td><td>{@code VuDevRegion}, {@code vu_gpa_to_va}, {@code qva_to_va}</td>
 *     <td>the front-end's memfds mapped shared</td></tr>
 * <tr><td>{@link io.vblk.vhost.VhostUserBlkFrontend}</td><td>{@code VHostUserBlk}
 *     (hw/block/vhost-user-blk.c), {@code vhost_dev_start/stop}</td>
 *     <td>the machine's vhost-user-blk-pci device</td></tr>
 * <tr><td>{@link io.vblk.vhost.VhostUserClient}</td><td>hw/virtio/vhost-user.c</td>
 *     <td>request/reply with REPLY_ACK, bounded waits</td></tr>
 * <tr><td>{@link io.vblk.vhost.UnixSocket}, {@link io.vblk.vhost.VhostUserMsg}</td>
 *     <td>{@code QIOChannelSocket}, {@code VhostUserMsg}, {@code vu_message_read/write}</td>
 *     <td>SCM_RIGHTS through JNA sendmsg/recvmsg; the wire format</td></tr>
 * <tr><td>{@link io.vblk.vhost.TakenRequestHold}</td><td>none (a test seam)</td>
 *     <td>{@code vblk serve --x-hold-after-take N}: holds the N-th write taken and marked in flight, so a
 *     test kills the back-end at that step</td></tr>
 * </table>
 *
 * <h2>Decisions worth knowing</h2>
 * <ul>
 * <li><b>No second implementation.</b> The back-end's rings are served by
 *     {@code VirtQueue}, {@code VirtioBlk} and {@code VirtioBlkDataplane}
 *     exactly as the in-process PCI device's: a ring's kick descriptor is the
 *     queue's host notifier in its IOThread, its call descriptor the guest
 *     notifier signalled from the IOThread.</li>
 * <li><b>Ring changes go through the dataplane's stop and start.</b> The
 *     dataplane starts and stops a device's queues together; any change to
 *     the set of running rings, a running ring's configuration or the memory
 *     table is a stop (drained, every completion pushed and signalled) and a
 *     start. GET_VRING_BASE answers after that stop.</li>
 * <li><b>One message at a time.</b> Processing a message may poll the main
 *     loop (a drain); the connection is unwatched meanwhile, so no message
 *     is handled inside another.</li>
 * <li><b>Offered protocol features</b>: MQ, REPLY_ACK, BACKEND_REQ (config-change
 *     messages for {@code VhostUserBlkServer.resized}), CONFIG, RESET_DEVICE,
 *     CONFIGURE_MEM_SLOTS, INFLIGHT_SHMFD ({@code InflightTable}, the
 *     queue's {@code InflightRegion}: resubmission after a crash), LOG_SHMFD
 *     with VHOST_F_LOG_ALL ({@code VhostUserLog}: dirty logging for live
 *     migration). Not offered: STATUS, in-band notifications, postcopy;
 *     their messages are refused.</li>
 * <li><b>The front-end is untrusted</b> (DESIGN rule 9): {@code MessageReader}
 *     and non-blocking replies keep every thread off the front-end's socket;
 *     {@code PeerFd} checks every descriptor it passes before use (eventfds
 *     made non-blocking, memory files covering their mapping, a socket for
 *     the back-end channel); {@code MemoryTable} checks every range before
 *     mapping.</li>
 * <li><b>Front-end interrupts</b>: a queue with an MSI-X vector gets the
 *     vector's irqfd as call descriptor (the back-end interrupts the vCPU
 *     directly); one without (SeaBIOS) gets an eventfd the main loop relays to
 *     the transport. Vector masking is not forwarded (QEMU switches the call
 *     descriptor on mask, {@code vhost_virtqueue_mask}); no guest here masks.</li>
 * </ul>
 */
package io.vblk.vhost;
