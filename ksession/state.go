package ksession

// State is where a session stands in its life: logged in, recovering a
// broken connection, logging out, or gone.
type State int

// The states.
const (
	// Failed: the session is not in the kernel (any more): the login
	// failed, recovery gave up, or it was logged out.
	Failed State = iota
	// LoggedIn: the connection is in the full feature phase.
	LoggedIn
	// Reopen: the connection broke and relogins are under way; the kernel
	// holds the I/O until replacement_timeout.
	Reopen
	// InLogout: a logout is under way.
	InLogout
)

// String is open-iscsi's name of the state: LOGGED_IN, REOPEN, IN_LOGOUT or
// FAILED.
func (s State) String() string {
	switch s {
	case LoggedIn:
		return "LOGGED_IN"
	case Reopen:
		return "REOPEN"
	case InLogout:
		return "IN_LOGOUT"
	}
	return "FAILED"
}

// ConnState is how iscsiadm -m session -P 1 names the connection's state in a
// session of this state ("iSCSI Connection State").
func (s State) ConnState() string {
	switch s {
	case LoggedIn:
		return "LOGGED IN"
	case Reopen:
		return "TRANSPORT WAIT"
	case InLogout:
		return "IN LOGOUT"
	}
	return "FREE"
}

// InternalState is how iscsiadm -m session -P 1 names the daemon's recovery
// stage in a session of this state ("Internal iscsid Session State"), in
// iscsid's words: NO CHANGE, REOPEN, or CLEANUP for a session being torn
// down.
func (s State) InternalState() string {
	switch s {
	case Reopen:
		return "REOPEN"
	case Failed:
		return "CLEANUP"
	}
	return "NO CHANGE"
}
