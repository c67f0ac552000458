package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `vblk boot`: exit codes and messages, as a user sees them. */
class BootCommandTest {
    record Result(int code, String out, String err) {
    }

    static Result run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.execute(new PrintWriter(out), new PrintWriter(err), args);
        return new Result(code, out.toString(), err.toString());
    }

    @Test
    void bootsTheDefaultDiskAndSummarises() {
        Result r = run("boot", "--resets", "3", "--stop-start", "3");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("vblk-bios: MBR OK"), r.out());
        assertTrue(r.out().contains("boots                  4 (all MBR OK)"), r.out());
        assertTrue(r.out().contains("dataplane stop/starts  3"), r.out());
        assertTrue(r.out().contains("hangs detected         0"), r.out());
    }

    @Test
    void aMissingImageIsAOneLineError(@TempDir Path dir) {
        Result r = run("boot", "--image", dir.resolve("nope.img").toString());
        assertEquals(Main.EXIT_USAGE, r.code());
        assertEquals("vblk boot: image '" + dir.resolve("nope.img") + "' does not exist\n", r.err());
    }

    @Test
    void aDirectoryIsNotAnImage(@TempDir Path dir) {
        Result r = run("boot", "--image", dir.toString());
        assertEquals(Main.EXIT_USAGE, r.code());
        assertTrue(r.err().contains("is a directory, not a disk image"), r.err());
    }

    @Test
    void anImageSmallerThanASectorIsRefused(@TempDir Path dir) throws Exception {
        Path tiny = Files.write(dir.resolve("tiny.img"), new byte[100]);
        Result r = run("boot", "--image", tiny.toString());
        assertEquals(Main.EXIT_USAGE, r.code());
        assertTrue(r.err().contains("is 100 bytes, smaller than one 512-byte sector"), r.err());
    }

    @Test
    void anImageWithoutABootSignatureFailsTheBoot(@TempDir Path dir) throws Exception {
        Path blank = Files.write(dir.resolve("blank.img"), new byte[1 << 20]);
        Result r = run("boot", "--image", blank.toString(), "--quiet");
        assertEquals(Main.EXIT_FAILED, r.code());
        assertTrue(r.err().contains("no bootable signature"), r.err());
        assertTrue(r.out().contains("boots                  1 (1 failed: the MBR has no boot signature (0x55AA))"),
                r.out());
        assertTrue(r.out().contains("hangs detected         0"), "a failed boot is not a hang: " + r.out());
    }

    @Test
    void aTextFileFailsTheBootOnceAndNothingHung(@TempDir Path dir) throws Exception {
        Path text = Files.writeString(dir.resolve("passwd"), "root:x:0:0:root:/root:/bin/bash\n".repeat(40));
        Result r = run("boot", "--image", text.toString());
        assertEquals(Main.EXIT_FAILED, r.code(), r.err());
        assertTrue(r.out().contains("hangs detected         0"), r.out());
        assertEquals(1, count(r.out() + r.err(), "no bootable signature"),
                "the firmware's console appears once: " + r.out() + r.err());
        assertEquals(1, count(r.out() + r.err(), "the MBR has no boot signature"), r.out() + r.err());
    }

    @Test
    void aZeroLengthImageIsAOneLineError(@TempDir Path dir) throws Exception {
        Path empty = Files.createFile(dir.resolve("empty.img"));
        Result r = run("boot", "--image", empty.toString());
        assertEquals(Main.EXIT_USAGE, r.code());
        assertEquals("vblk boot: image '" + empty + "' is 0 bytes, smaller than one 512-byte sector\n", r.err());
        assertEquals("", r.out());
    }

    @Test
    void anUnreadableImageIsRefusedOrFailsWithoutAHang(@TempDir Path dir) throws Exception {
        Path img = Files.write(dir.resolve("secret.img"), new byte[1 << 20]);
        Files.setPosixFilePermissions(img, java.util.Set.of());
        Result r = run("boot", "--image", img.toString(), "--quiet");
        if (Files.isReadable(img)) { // root reads anyway: the boot then fails on the missing signature
            assertEquals(Main.EXIT_FAILED, r.code(), r.err());
            assertTrue(r.out().contains("hangs detected         0"), r.out());
        } else {
            assertEquals(Main.EXIT_USAGE, r.code());
            assertEquals("vblk boot: image '" + img + "' is not readable (check its permissions)\n", r.err());
        }
    }

    private static int count(String haystack, String needle) {
        int n = 0;
        for (int i = haystack.indexOf(needle); i >= 0; i = haystack.indexOf(needle, i + 1)) {
            n++;
        }
        return n;
    }

    @Test
    void badOptionValuesAreOneLineErrorsWithAHint() {
        Result r = run("boot", "--iothreads", "many");
        assertEquals(Main.EXIT_USAGE, r.code());
        assertTrue(r.err().startsWith("vblk: Invalid value for option '--iothreads': 'many' is not an int"), r.err());
        assertTrue(r.err().contains("(see 'vblk boot --help')"), r.err());
        Result dp = run("boot", "--dataplane", "maybe");
        assertEquals(Main.EXIT_USAGE, dp.code());
        assertEquals("vblk boot: --dataplane must be 'on' or 'off', not 'maybe'\n", dp.err());
        Result none = run("boot", "--iothreads", "0");
        assertEquals("vblk boot: --dataplane on needs at least one IOThread (--iothreads N)\n", none.err());
    }

    @Test
    void helpDescribesTheOptionsAndExitCodes() {
        Result r = run("boot", "--help");
        assertEquals(0, r.code());
        assertTrue(r.out().contains("--stop-start=K"), r.out());
        assertTrue(r.out().contains("3 a hang was detected"), r.out());
        Result top = run("--help");
        assertTrue(top.out().contains("boot") && top.out().contains("scenario"), top.out());
    }
}
