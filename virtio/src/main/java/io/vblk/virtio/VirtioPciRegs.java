package io.vblk.virtio;

/**
 * Register offsets and bits of a modern virtio-pci function as a guest
 * driver sees them: the PCI type-0 header and capability formats
 * ({@code linux/pci_regs.h}) and the virtio-pci structures of virtio 1.2
 * section 4.1 ({@code linux/virtio_pci.h}). For drivers, firmware and tests;
 * the device side uses the same numbers.
 */
public final class VirtioPciRegs {
    private VirtioPciRegs() {
    }

    // ---- PCI type-0 configuration header
    public static final int VENDOR_ID = 0x00;
    public static final int DEVICE_ID = 0x02;
    public static final int COMMAND = 0x04;
    public static final int STATUS = 0x06;
    public static final int REVISION_ID = 0x08;
    /** Class code: prog-if at 0x09, subclass at 0x0a, base class at 0x0b. */
    public static final int CLASS_PROG = 0x09;
    public static final int CACHE_LINE_SIZE = 0x0c;
    public static final int HEADER_TYPE = 0x0e;
    public static final int BAR0 = 0x10;
    public static final int SUBSYSTEM_VENDOR_ID = 0x2c;
    public static final int SUBSYSTEM_ID = 0x2e;
    public static final int ROM_ADDRESS = 0x30;
    public static final int CAPABILITY_LIST = 0x34;
    public static final int INTERRUPT_LINE = 0x3c;
    public static final int INTERRUPT_PIN = 0x3d;

    public static final int COMMAND_IO = 0x1;
    public static final int COMMAND_MEMORY = 0x2;
    public static final int COMMAND_MASTER = 0x4;
    public static final int COMMAND_INTX_DISABLE = 0x400;
    public static final int STATUS_INTERRUPT = 0x08;
    public static final int STATUS_CAP_LIST = 0x10;

    public static final int BAR_SPACE_IO = 0x1;
    public static final int BAR_MEM_TYPE_64 = 0x4;
    public static final int BAR_MEM_PREFETCH = 0x8;

    public static final int CAP_ID_VNDR = 0x09;
    public static final int CAP_ID_MSIX = 0x11;

    // ---- MSI-X capability and table
    /** Message control (u16) at cap + 2: table size - 1 in bits 10:0. */
    public static final int MSIX_FLAGS = 2;
    public static final int MSIX_FLAGS_QSIZE = 0x07ff;
    public static final int MSIX_FLAGS_MASKALL = 0x4000;
    public static final int MSIX_FLAGS_ENABLE = 0x8000;
    /** Table offset | BIR (u32) at cap + 4. */
    public static final int MSIX_TABLE = 4;
    /** PBA offset | BIR (u32) at cap + 8. */
    public static final int MSIX_PBA = 8;
    public static final int MSIX_BIR_MASK = 0x7;
    public static final int MSIX_ENTRY_SIZE = 16;
    public static final int MSIX_ENTRY_LOWER_ADDR = 0;
    public static final int MSIX_ENTRY_UPPER_ADDR = 4;
    public static final int MSIX_ENTRY_DATA = 8;
    public static final int MSIX_ENTRY_VECTOR_CTRL = 12;
    public static final int MSIX_ENTRY_CTRL_MASKBIT = 0x1;

    // ---- struct virtio_pci_cap (vendor-specific capability)
    public static final int CAP_LEN = 2;
    public static final int CAP_CFG_TYPE = 3;
    public static final int CAP_BAR = 4;
    public static final int CAP_ID = 5;
    public static final int CAP_OFFSET = 8;
    public static final int CAP_LENGTH = 12;
    /** struct virtio_pci_notify_cap: notify_off_multiplier after the generic part. */
    public static final int NOTIFY_CAP_MULT = 16;
    /** struct virtio_pci_cfg_cap: pci_cfg_data[4] after the generic part. */
    public static final int PCI_CFG_DATA = 16;

    public static final int CAP_COMMON_CFG = 1;
    public static final int CAP_NOTIFY_CFG = 2;
    public static final int CAP_ISR_CFG = 3;
    public static final int CAP_DEVICE_CFG = 4;
    public static final int CAP_PCI_CFG = 5;

    // ---- struct virtio_pci_common_cfg
    public static final int COMMON_DFSELECT = 0x00;
    public static final int COMMON_DF = 0x04;
    public static final int COMMON_GFSELECT = 0x08;
    public static final int COMMON_GF = 0x0c;
    public static final int COMMON_MSIX = 0x10;
    public static final int COMMON_NUMQ = 0x12;
    public static final int COMMON_STATUS = 0x14;
    public static final int COMMON_CFGGENERATION = 0x15;
    public static final int COMMON_Q_SELECT = 0x16;
    public static final int COMMON_Q_SIZE = 0x18;
    public static final int COMMON_Q_MSIX = 0x1a;
    public static final int COMMON_Q_ENABLE = 0x1c;
    public static final int COMMON_Q_NOFF = 0x1e;
    public static final int COMMON_Q_DESCLO = 0x20;
    public static final int COMMON_Q_DESCHI = 0x24;
    public static final int COMMON_Q_AVAILLO = 0x28;
    public static final int COMMON_Q_AVAILHI = 0x2c;
    public static final int COMMON_Q_USEDLO = 0x30;
    public static final int COMMON_Q_USEDHI = 0x34;

    /** ISR status bits. */
    public static final int ISR_QUEUE = 0x1;
    public static final int ISR_CONFIG = 0x2;

    /** "No MSI-X vector" in msix_config / queue_msix_vector. */
    public static final int NO_VECTOR = 0xffff;
}
