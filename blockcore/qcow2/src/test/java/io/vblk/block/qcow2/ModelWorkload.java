package io.vblk.block.qcow2;

import com.sun.jna.Memory;

import io.vblk.block.BlockBackend;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockFlags;
import io.vblk.block.IoVec;

import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;

/**
 * Random reads, writes, write-zeroes, discards and flushes through a
 * backend, kept {@code depth} deep from completion callbacks in the node's
 * home context and checked against an {@link ImageModel}. Requests in
 * flight never overlap, so every read has exactly one right answer.
 * Problems are recorded (callbacks run on event-loop threads), not thrown.
 */
final class ModelWorkload {
    private static final int READ = 0;
    private static final int WRITE = 1;
    private static final int ZERO = 2;
    private static final int DISCARD = 3;
    private static final int FLUSH = 4;

    final ImageModel model;
    private final BlockBackend blk;
    private final Random rnd;
    private final int depth;
    private final int maxLen;
    private final long[] start;
    private final long[] end;
    private final Slot[] slots;
    private int remaining;
    private int active;
    int issued;
    int completed;
    int mismatches;
    int errors;
    final int[] byOp = new int[5];
    volatile String firstProblem;
    private CompletableFuture<Void> done;

    ModelWorkload(BlockBackend blk, ImageModel model, long seed, int depth, int maxLen) {
        this.blk = blk;
        this.model = model;
        this.rnd = new Random(seed);
        this.depth = depth;
        this.maxLen = maxLen;
        start = new long[depth];
        end = new long[depth];
        slots = new Slot[depth];
        for (int i = 0; i < depth; i++) {
            slots[i] = new Slot(i, maxLen);
        }
    }

    /** Issues {@code count} requests (in the backend's home context); completes when all did. */
    CompletableFuture<Void> run(int count) {
        done = new CompletableFuture<>();
        remaining = count;
        for (int i = 0; i < depth && remaining > 0; i++) {
            next(i);
        }
        return done;
    }

    private void next(int slot) {
        Slot s = slots[slot];
        int p = rnd.nextInt(100);
        s.op = p < 40 ? READ : p < 80 ? WRITE : p < 89 ? ZERO : p < 97 ? DISCARD : FLUSH;
        int size = model.bytes.length;
        int len = 1 + rnd.nextInt(rnd.nextInt(4) == 0 ? maxLen : Math.min(maxLen, 8192));
        long off;
        int attempts = 0;
        do {
            off = (long) (rnd.nextDouble() * (size - len + 1));
            if (s.op == DISCARD && rnd.nextBoolean()) {
                off = off / model.clusterSize * model.clusterSize;
            }
        } while (overlaps(slot, off, off + len) && ++attempts < 1000);
        if (attempts >= 1000) {
            s.op = FLUSH;
        }
        if (s.op == FLUSH) {
            off = 0;
            len = 0;
        }
        start[slot] = off;
        end[slot] = off + len;
        s.off = off;
        s.len = len;
        s.busy = true;
        remaining--;
        active++;
        issued++;
        byOp[s.op]++;
        IoVec v = s.iov;
        v.reset();
        v.add(Memory.nativeValue(s.buf), Math.max(len, 0));
        switch (s.op) {
            case READ:
                s.buf.clear(len);
                blk.preadv(off, len, v, 0, s);
                break;
            case WRITE: {
                byte[] data = new byte[len];
                rnd.nextBytes(data);
                s.buf.write(0, data, 0, len);
                blk.pwritev(off, len, v, rnd.nextInt(20) == 0 ? BlockFlags.FUA : 0, s);
                break;
            }
            case ZERO:
                blk.pwriteZeroes(off, len, rnd.nextBoolean() ? BlockFlags.MAY_UNMAP : 0, s);
                break;
            case DISCARD:
                blk.pdiscard(off, len, s);
                break;
            default:
                blk.flush(s);
        }
    }

    private boolean overlaps(int slot, long s, long e) {
        for (int i = 0; i < depth; i++) {
            if (i != slot && slots[i].busy && s < end[i] && start[i] < e) {
                return true;
            }
        }
        return false;
    }

    private void problem(String p) {
        if (firstProblem == null) {
            firstProblem = p;
        }
    }

    private final class Slot implements BlockCompletion {
        final int index;
        final Memory buf;
        final IoVec iov = new IoVec(1);
        int op;
        long off;
        int len;
        boolean busy;

        Slot(int index, int maxLen) {
            this.index = index;
            this.buf = new Memory(maxLen);
        }

        @Override
        public void complete(int ret) {
            if (!busy) {
                problem("duplicate completion in slot " + index);
                return;
            }
            busy = false;
            completed++;
            active--;
            if (ret < 0) {
                errors++;
                problem("op " + op + " at " + off + "+" + len + " failed: " + ret);
            } else {
                switch (op) {
                    case READ: {
                        byte[] got = buf.getByteArray(0, len);
                        if (!Arrays.equals(got, model.slice(off, len))) {
                            mismatches++;
                            problem("read at " + off + "+" + len + " does not match the model");
                        }
                        break;
                    }
                    case WRITE:
                        model.write(off, buf.getByteArray(0, len));
                        break;
                    case ZERO:
                        model.zero(off, len);
                        break;
                    case DISCARD:
                        model.discard(off, len);
                        break;
                    default:
                        break;
                }
            }
            if (remaining > 0) {
                next(index);
            } else if (active == 0) {
                done.complete(null);
            }
        }
    }
}
