package io.vblk.guest;

/**
 * Unwinds guest code on a vCPU that the machine is stopping (pause, reset):
 * thrown from the vCPU's next hardware access or wait, as a real vCPU is
 * kicked out of guest mode.
 */
public final class VcpuStoppedException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public VcpuStoppedException(String vcpu) {
        super(vcpu + " stopped", null, false, false);
    }
}
