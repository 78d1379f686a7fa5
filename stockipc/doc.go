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
// The layouts are those of x86_64, measured from open-iscsi's headers (see
// layout_tables.go).
package stockipc
