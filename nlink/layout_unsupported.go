//go:build linux && !(amd64 || arm64 || ppc64 || ppc64le || riscv64 || s390x || mips64 || mips64le || loong64)

package nlink

// struct iscsi_uevent's offsets here are those of 64-bit Linux, where its
// uint64 members are 8-byte aligned (UeventSize 56). On 32-bit architectures
// the kernel's structure has other offsets, and a 32-bit process on a 64-bit
// kernel gets no compat translation for NETLINK_ISCSI at all, so requests
// would be misread. Building for such an architecture stops here rather than
// producing a daemon that corrupts its kernel requests.
var _ = struct_iscsi_uevent_layout_is_only_known_for_64_bit_linux
