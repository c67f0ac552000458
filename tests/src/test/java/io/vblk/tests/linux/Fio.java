package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;

/**
 * fio jobs for the Linux guest and the facts a test asserts about their
 * JSON report. A verify job writes with a crc32c checksum in every block
 * ({@code --verify=crc32c}) and reads everything back at the end; with
 * {@code --verify_fatal=1} the first bad block ends the job with an error.
 */
public final class Fio {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Fio() {
    }

    /**
     * A shell command line: random 4 KiB writes of {@code sizeMiB} MiB over
     * {@code target} through libaio with O_DIRECT at queue depth 16, then
     * the verify pass. Its JSON report goes to {@code /tmp/NAME.json}, which
     * the command prints on success or failure; the exit status is fio's.
     */
    public static String randwriteVerify(String name, String target, int sizeMiB, long offsetMiB) {
        return "fio --name=" + name + " --filename=" + target + " --ioengine=libaio --direct=1 --rw=randwrite"
                + " --bs=4k --iodepth=16 --size=" + sizeMiB + "M --offset=" + offsetMiB + "M --verify=crc32c"
                + " --verify_fatal=1 --do_verify=1 --randrepeat=0 --output-format=json --output=/tmp/" + name + ".json"
                + " >/tmp/" + name + ".err 2>&1; st=$?; cat /tmp/" + name + ".json /tmp/" + name + ".err; (exit $st)";
    }

    /**
     * A shell command line: fio verify jobs of {@code mib} MiB
     * ({@link #randwriteVerify}), one after the other, until
     * {@code /tmp/stop} exists; the count so far is kept in
     * {@code /tmp/iterations}, and printed at the end as
     * {@code fio iterations: N}. A failing job ends the loop with its status
     * and report. With {@code firstDone} (a FIFO made beforehand with mkfifo)
     * the loop writes a line to it after the first job, which blocks it until
     * the test reads it ({@code cat FIFO}): the test's way to wait, without
     * polling, until the guest has done verified I/O. Run it with
     * {@link LinuxGuest#startBackground}.
     */
    public static String verifyLoop(int mib, String firstDone) {
        return "i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); " + randwriteVerify("loop", "/dev/vda", mib, 0)
                + " >/tmp/loop.out || { st=$?; echo \"fio iteration $i failed ($st)\"; cat /tmp/loop.out; exit $st; };"
                + " echo $i >/tmp/iterations;" + (firstDone == null ? "" : " [ $i = 1 ] && echo done >" + firstDone + ";")
                + " done; echo \"fio iterations: $i\"";
    }

    /** What one job of a report says. */
    public record Job(String name, int error, long writtenBytes, long readBytes) {
    }

    /** Parses the report a {@link #randwriteVerify} command printed (anything after the JSON is ignored). */
    public static Job parse(GuestResult r) throws IOException {
        String out = r.output();
        int start = out.indexOf('{');
        if (start < 0) {
            fail("fio printed no JSON report:\n" + r);
        }
        JsonNode report = JSON.reader().readTree(out.substring(start));
        JsonNode job = report.path("jobs").path(0);
        if (job.isMissingNode()) {
            fail("fio's report has no job:\n" + r);
        }
        return new Job(job.path("jobname").asText(), job.path("error").asInt(),
                job.path("write").path("io_bytes").asLong(), job.path("read").path("io_bytes").asLong());
    }
}
