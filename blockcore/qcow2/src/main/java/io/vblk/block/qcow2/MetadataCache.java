package io.vblk.block.qcow2;

import com.sun.jna.Memory;

import io.vblk.aio.Errno;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A bounded write-back cache of one-cluster metadata tables, least recently
 * used first out: QEMU's {@code Qcow2Cache} (block/qcow2-cache.c), one
 * instance for L2 tables and one for refcount blocks.
 *
 * <p>Entries are keyed by their index in the parent table (the L1 index of an
 * L2 table, the refcount-table index of a refcount block), so the hot path
 * ({@link #peek}) is an array load, no hashing and no boxing. Each entry owns
 * a cluster of native memory in on-disk byte order, read and written with
 * one {@code preadv}/{@code pwritev}.
 *
 * <p>Concurrency: {@link #peek} may run anywhere in the home context and only
 * reads; everything that loads, creates, evicts or writes runs under the
 * image's {@link MetadataLock}. A dirty entry is never dropped: making room
 * when only dirty entries are evictable asks the owner's {@link Cleaner} to
 * write it back, because only the owner knows what must reach the disk first
 * (refcount blocks and a flush before an L2 table: QEMU's
 * {@code qcow2_cache_set_dependency} and {@code depends_on_flush}).
 */
final class MetadataCache {
    private static final Logger LOG = LoggerFactory.getLogger(MetadataCache.class);

    /** Writes back {@code victim} (and whatever must precede it), then completes {@code done}. */
    interface Cleaner {
        void clean(Entry victim, BlockCompletion done);
    }

    /** One cached table. */
    static final class Entry {
        int key = -1;
        long offset;
        final Memory mem;
        final ByteBuffer bb;
        final IoVec iov = new IoVec(1);
        boolean ready;
        boolean dirty;
        boolean writing;
        int pins;
        Entry prev;
        Entry next;

        Entry(int size) {
            mem = new Memory(size);
            bb = mem.getByteBuffer(0, size).order(ByteOrder.BIG_ENDIAN);
            iov.add(Memory.nativeValue(mem), size);
        }

        long getLong(int i) {
            return bb.getLong(i << 3);
        }

        /** Changes entry {@code i}; the table is written back later. */
        void putLong(int i, long v) {
            bb.putLong(i << 3, v);
            dirty = true;
        }
    }

    private final String name;
    private final int tableSize;
    private final int capacity;
    private final Supplier<BlockNode> file;
    private Cleaner cleaner;
    private Entry[] byKey;
    private Entry head; // most recently used
    private Entry tail; // least recently used
    private int resident;
    private int created;
    private final ArrayDeque<Entry> spare = new ArrayDeque<>();
    private long hits;
    private long misses;
    private long evictions;
    private long writebacks;

    MetadataCache(String name, int tableSize, int capacity, int keys, Supplier<BlockNode> file) {
        if (capacity < 2) {
            throw new IllegalArgumentException(name + " cache needs at least 2 entries");
        }
        this.name = name;
        this.tableSize = tableSize;
        this.capacity = capacity;
        this.byKey = new Entry[Math.max(1, keys)];
        this.file = file;
    }

    void setCleaner(Cleaner c) {
        cleaner = c;
    }

    int capacity() {
        return capacity;
    }

    int resident() {
        return resident;
    }

    /** The number of keys (parent-table entries) the cache can address; grows with the refcount table. */
    void ensureKeys(int keys) {
        if (keys > byKey.length) {
            byKey = Arrays.copyOf(byKey, keys);
        }
    }

    /**
     * The ready entry for {@code key} at {@code offset}, or null: the lock-free
     * lookup of the request fast path. Marks the entry most recently used.
     */
    Entry peek(int key, long offset) {
        if (key >= byKey.length) {
            return null;
        }
        Entry e = byKey[key];
        if (e == null || !e.ready || e.offset != offset) {
            return null;
        }
        hits++;
        if (e != head) {
            unlink(e);
            linkHead(e);
        }
        return e;
    }

    /**
     * Makes the table of {@code key} at {@code offset} resident (reading it
     * if needed, after making room) and completes {@code cb} with 0 or -errno.
     * Under the metadata lock.
     */
    void load(int key, long offset, BlockCompletion cb) {
        Entry e = key < byKey.length ? byKey[key] : null;
        if (e != null && e.ready && e.offset == offset) {
            peek(key, offset);
            cb.complete(0);
            return;
        }
        if (e != null) {
            if (e.dirty) {
                LOG.error("{} cache: table {} cached at 0x{} but now at 0x{}", name, key, Long.toHexString(e.offset),
                        Long.toHexString(offset));
                cb.complete(-Errno.EIO);
                return;
            }
            evict(e);
        }
        makeFreeSlot(ret -> {
            if (ret < 0) {
                cb.complete(ret);
                return;
            }
            Entry n = takeSlot();
            n.key = key;
            n.offset = offset;
            n.ready = false;
            n.dirty = false;
            ensureKeys(key + 1);
            byKey[key] = n;
            linkHead(n);
            misses++;
            file.get().preadv(offset, tableSize, n.iov, 0, r -> {
                if (r < 0) {
                    LOG.warn("{} cache: reading the table at 0x{} failed: errno {}", name, Long.toHexString(offset), -r);
                    evict(n);
                    cb.complete(r);
                    return;
                }
                n.ready = true;
                cb.complete(0);
            });
        });
    }

    boolean hasFreeSlot() {
        return !spare.isEmpty() || created < capacity;
    }

    /**
     * Ensures {@link #hasFreeSlot()}: drops the least recently used clean,
     * unpinned entry, or has the cleaner write back a dirty one first.
     */
    void makeFreeSlot(BlockCompletion cb) {
        makeFreeSlot(cb, 0);
    }

    private void makeFreeSlot(BlockCompletion cb, int attempt) {
        if (hasFreeSlot()) {
            cb.complete(0);
            return;
        }
        Entry dirtyVictim = null;
        for (Entry e = tail; e != null; e = e.prev) {
            if (!e.ready || e.pins > 0 || e.writing) {
                continue;
            }
            if (!e.dirty) {
                evict(e);
                cb.complete(0);
                return;
            }
            if (dirtyVictim == null) {
                dirtyVictim = e;
            }
        }
        if (dirtyVictim == null || attempt > 2) {
            LOG.error("{} cache: all {} entries are in use; cannot make room", name, capacity);
            cb.complete(-Errno.EBUSY);
            return;
        }
        writebacks++;
        cleaner.clean(dirtyVictim, ret -> {
            if (ret < 0) {
                cb.complete(ret);
            } else {
                makeFreeSlot(cb, attempt + 1);
            }
        });
    }

    /** A new all-zero table for {@code key} at {@code offset}, dirty; requires {@link #hasFreeSlot()}. */
    Entry create(int key, long offset) {
        if (!hasFreeSlot()) {
            throw new IllegalStateException(name + " cache: create without a free slot");
        }
        Entry e = key < byKey.length ? byKey[key] : null;
        if (e != null) {
            evict(e);
        }
        Entry n = takeSlot();
        n.mem.clear();
        n.key = key;
        n.offset = offset;
        n.ready = true;
        n.dirty = true;
        ensureKeys(key + 1);
        byKey[key] = n;
        linkHead(n);
        return n;
    }

    /** Writes {@code e} back; it stays resident and becomes clean (dirty again if the write fails). */
    void write(Entry e, BlockCompletion cb) {
        e.dirty = false;
        e.writing = true;
        file.get().pwritev(e.offset, tableSize, e.iov, 0, r -> {
            e.writing = false;
            if (r < 0) {
                e.dirty = true;
                LOG.warn("{} cache: writing the table at 0x{} failed: errno {}", name, Long.toHexString(e.offset), -r);
            }
            cb.complete(r);
        });
    }

    /** Adds every dirty entry to {@code out}, least recently used first. */
    void collectDirty(List<Entry> out) {
        for (Entry e = tail; e != null; e = e.prev) {
            if (e.ready && e.dirty && !e.writing) {
                out.add(e);
            }
        }
    }

    int dirtyCount() {
        int n = 0;
        for (Entry e = head; e != null; e = e.next) {
            if (e.dirty) {
                n++;
            }
        }
        return n;
    }

    /** Drops every entry, dirty or not (the image is re-read after another process changed it). */
    void invalidate() {
        while (head != null) {
            evict(head);
        }
    }

    private Entry takeSlot() {
        Entry e = spare.pollFirst();
        if (e == null) {
            e = new Entry(tableSize);
            created++;
        }
        return e;
    }

    private void evict(Entry e) {
        unlink(e);
        if (e.key >= 0 && e.key < byKey.length && byKey[e.key] == e) {
            byKey[e.key] = null;
        }
        e.key = -1;
        e.ready = false;
        e.dirty = false;
        e.pins = 0;
        spare.addFirst(e);
        evictions++;
    }

    private void linkHead(Entry e) {
        e.prev = null;
        e.next = head;
        if (head != null) {
            head.prev = e;
        }
        head = e;
        if (tail == null) {
            tail = e;
        }
        resident++;
    }

    private void unlink(Entry e) {
        if (e.prev != null) {
            e.prev.next = e.next;
        } else if (head == e) {
            head = e.next;
        } else {
            return; // not linked
        }
        if (e.next != null) {
            e.next.prev = e.prev;
        } else {
            tail = e.prev;
        }
        e.prev = null;
        e.next = null;
        resident--;
    }

    long hits() {
        return hits;
    }

    long misses() {
        return misses;
    }

    long evictions() {
        return evictions;
    }

    long writebacks() {
        return writebacks;
    }

    /** Counters only: dumps call this from the watchdog's thread, so it must not walk the list. */
    String describe() {
        return name + " cache " + resident + "/" + capacity + " hits=" + hits + " misses=" + misses + " evictions="
                + evictions + " writebacks=" + writebacks;
    }
}
