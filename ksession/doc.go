// Package ksession runs iSCSI sessions whose full feature phase is in the
// Linux kernel (iscsi_tcp): Establish connects to the portal, creates the
// kernel's session and connection, hands the socket to the kernel, logs in
// through it (session.Login over ISCSI_UEVENT_SEND_PDU and RECV_PDU), sets the
// negotiated values and starts the connection; the session then keeps itself
// up through connection errors (relogin with the same ISID while the kernel
// holds the I/O) until Logout. Adopt takes over a session that a previous
// daemon left in the kernel, without logging it in again.
//
// The login state machine itself is package session's, the same for
// discovery over a plain TCP connection; this package is what is Linux about
// a session.
package ksession
