package io.vblk.block.qcow2;

import io.vblk.block.BlockChild;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;

import java.io.IOException;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.Deque;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Opens the backing file named in a qcow2 header as the node's
 * {@link ChildRole#BACKING} child: QEMU's {@code bdrv_open_backing_file}
 * with {@code bdrv_get_full_backing_filename}.
 *
 * <p>A relative name is relative to the overlay's directory; the backing
 * format extension names the format (without it the backing file is probed,
 * with a warning, as QEMU 7 does). The backing image is opened read-only
 * through {@link BlockLayer#openImage}, whose own {@code afterOpen} opens the
 * next link, so chains of any depth open recursively. Backing nodes are named
 * after the overlay: {@code disk-backing}, {@code disk-backing2}, ... A name
 * that leads back into the chain being opened is refused.
 */
final class BackingChain {
    private static final Logger LOG = LoggerFactory.getLogger(BackingChain.class);
    private static final Pattern BACKING_SUFFIX = Pattern.compile("(.*)-backing(\\d*)");
    /** The images being opened on this thread, outermost first (loop detection). */
    private static final ThreadLocal<Deque<Path>> OPENING = ThreadLocal.withInitial(ArrayDeque::new);

    private BackingChain() {
    }

    /**
     * Attaches the backing chain of {@code node}. On failure the half-opened
     * node is released (closing its file) and a {@link BlockException} says
     * which backing file failed and why.
     */
    static void open(BlockLayer layer, BlockNode node) {
        Qcow2Driver d = (Qcow2Driver) node.driver();
        Qcow2Header h = d.header();
        if (h.backingFile == null) {
            return;
        }
        Deque<Path> opening = OPENING.get();
        Path self = realPath(d.path());
        boolean pushed = false;
        try {
            if (self != null) {
                opening.push(self);
                pushed = true;
            }
            Path p = resolve(h.backingFile, d.path(), d.image());
            Path real = realPath(p);
            if (real != null && opening.contains(real)) {
                throw new BlockException("qcow2 image '" + d.image() + "': backing file '" + h.backingFile
                        + "' leads back into its own backing chain");
            }
            if (h.backingFormat == null) {
                LOG.warn("qcow2 image '{}' names backing file '{}' without a format; probing it", d.image(),
                        h.backingFile);
            }
            BlockNode backing;
            try {
                backing = layer.openImage(childName(node.name()), p, h.backingFormat, true);
            } catch (BlockException e) {
                throw new BlockException("qcow2 image '" + d.image() + "': cannot open backing file '" + h.backingFile
                        + "': " + e.getMessage(), e);
            }
            try {
                BlockChild edge = node.attachChild(backing, "backing", ChildRole.BACKING);
                LOG.debug("qcow2 image '{}': backing file {} attached as {}", d.image(), p, edge);
            } finally {
                backing.unref(); // the edge holds the reference now
            }
        } finally {
            if (pushed) {
                opening.pop();
            }
        }
    }

    /** The backing file's path: absolute as written, relative to the overlay's directory otherwise. */
    static Path resolve(String name, Path overlay, String image) {
        if (name.startsWith("json:") || name.matches("^[A-Za-z][A-Za-z0-9+.-]*://.*")) {
            throw new BlockException("qcow2 image '" + image + "': unsupported backing file name '" + name
                    + "' (only file paths are supported)");
        }
        if (name.startsWith("file:")) {
            name = name.substring("file:".length());
        }
        Path p;
        try {
            p = Path.of(name);
        } catch (InvalidPathException e) {
            throw new BlockException("qcow2 image '" + image + "': invalid backing file name '" + name + "': "
                    + e.getReason());
        }
        if (p.isAbsolute() || overlay == null) {
            return p;
        }
        Path dir = overlay.toAbsolutePath().getParent();
        return dir == null ? p : dir.resolve(p);
    }

    /** disk -> disk-backing -> disk-backing2 -> disk-backing3 ... */
    static String childName(String overlay) {
        Matcher m = BACKING_SUFFIX.matcher(overlay);
        if (m.matches()) {
            int n = m.group(2).isEmpty() ? 1 : Integer.parseInt(m.group(2));
            return m.group(1) + "-backing" + (n + 1);
        }
        return overlay + "-backing";
    }

    private static Path realPath(Path p) {
        if (p == null) {
            return null;
        }
        try {
            return p.toRealPath();
        } catch (IOException e) {
            return null;
        }
    }
}
