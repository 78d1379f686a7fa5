// Package stockipc serves open-iscsi's iscsiadm⇄iscsid IPC, so that the
// stock iscsiadm that consumers run (os-brick, libvirt, Proxmox, CSI drivers
// whose containers ship their own) works with goiscsid in place of iscsid.
//
// The protocol is open-iscsi's own (usr/mgmt_ipc.h): a unix stream socket
// bound to the abstract name "\0ISCSIADM_ABSTRACT_NAMESPACE", one connection
// per request, the client writing one iscsiadm_req_t whole (a fixed C struct
// that embeds the whole in-memory node_rec_t, so its size changes between
// releases) and reading one iscsiadm_rsp_t (2464 bytes) whole. There is no
// version field: the request's size is the only hint of the sender's
// release, so the server reads what arrives and picks the layout by its
// length (KnownSizes), and answers a length it does not know with an error
// instead of waiting for bytes that never come, as stock iscsid would.
//
// DecodeRequest turns a request into a Request whose node record is the
// key = value map stock writes in a record file; EncodeResponse writes the
// answer. Server accepts connections, checks that the peer is root as stock
// iscsid does, and hands each request to a Handler, the daemon.
//
// What stock iscsiadm 2.1.8 sends, and what the Handler must answer
// (from usr/iscsiadm.c, session_mgmt.c, session_info.c, discovery.c and
// iscsid_req.c; CONFIG_FILE, SESSION_LOGIN and IMMEDIATE_STOP also seen from
// Debian's binary, the others need a kernel session):
//   - CONFIG_FILE, whenever iscsiadm builds a record from defaults (-o new,
//     discovery): Config = the path of the daemon's iscsid.conf, which
//     iscsiadm then reads for the defaults. Timeout 1 s; without an answer
//     iscsiadm silently uses its built-in defaults instead.
//   - SESSION_LOGIN, one connection per session to create (--login, -L,
//     -l), all sent before the first answer is read: Err when the login is
//     over (0, or e.g. 15 exists, 24 authorization failure, 19 fatal, 8/11
//     timeouts); iscsiadm waits without a timeout and prints
//     "Login to [iface: I, target: T, portal: A,P] successful." or the error.
//     Stock answers after the LUN scan, or at once when node.session.scan is
//     manual. Multiple means: log in even if a session to the portal exists.
//   - SESSION_LOGOUT (sid; -u, -U, -m session -r N -u): Err when logged out
//     (2 unknown sid, 28 busy under iscsid.safe_logout, 9 login in progress).
//   - SESSION_INFO (sid; -m session -P 1/2/3, once per session, no timeout):
//     SessionState (r_stage) and ConnState, printed as "Internal iscsid
//     Session State" and "iSCSI Connection State"; Err 2 prints "Unknown".
//   - SESSION_STATS (sid; -m session -s, timeout 60 s): Stats.
//   - CONFIG_INAME and CONFIG_IALIAS (SendTargets and iSNS discovery when
//     the iface names no initiator): Config = the initiator name, alias.
//   - IMMEDIATE_STOP (-k 0, timeout 1 s): Err 0, then the daemon exits;
//     Serve writes the answer before it returns.
//
// -m session (-P 0), -R and discovery itself need no daemon: iscsiadm reads
// sysfs and talks to the target directly.
//
// The layouts are those of x86_64, measured from open-iscsi's headers (see
// layout_tables.go).
package stockipc
