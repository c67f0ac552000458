package io.vblk.tests.linux;

/** What a command run in the Linux guest printed (stdout and stderr, interleaved) and its exit status. */
public record GuestResult(String command, int status, String output) {
    public boolean ok() {
        return status == 0;
    }

    @Override
    public String toString() {
        return "guest$ " + command + "\n" + output + (output.endsWith("\n") || output.isEmpty() ? "" : "\n")
                + "(exit status " + status + ")";
    }
}
