// Package nlink speaks ISCSI_UEVENT, the netlink protocol (NETLINK_ISCSI) between
// iSCSI userspace and the kernel's scsi_transport_iscsi / iscsi_tcp.
//
// A [Conn] sends requests (create a session and a connection, bind a TCP socket,
// set parameters, start, stop, send a PDU, destroy) and routes the kernel's events
// (received PDUs, connection errors) to per-session [Subscription]s. It talks
// through a [Transport]: [Dial] opens the real netlink sockets; the nlinktest
// package provides an in-memory kernel for tests.
//
// struct iscsi_uevent is 56 bytes in host byte order (include/scsi/iscsi_if.h);
// the offsets used here were measured with gcc on x86_64.
package nlink
