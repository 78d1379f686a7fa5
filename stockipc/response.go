package stockipc

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/nlink"
)

// ResponseSize is sizeof(iscsiadm_rsp_t): 2464 bytes in every 2.1.x
// release (x86_64), so any iscsiadm reads the same answer.
const ResponseSize = 2464

// Places in iscsiadm_rsp_t.
const (
	rspCommand      = 0
	rspErr          = 4
	rspUnion        = 8
	rspEvent        = rspUnion                                        // u.getstats.ev: struct iscsi_uevent, 56 bytes
	rspStats        = rspEvent + 56                                   // u.getstats.stats: struct iscsi_stats, 96 bytes
	rspCustom       = rspStats + statsFixed                           // the custom counters, 72 bytes each
	rspConfig       = rspUnion                                        // u.config.var[VALUE_MAXLEN]
	rspConfigLen    = 255                                             // VALUE_MAXLEN
	rspSessionState = rspUnion                                        // u.session_state.session_state
	rspConnState    = rspUnion + 4                                    // u.session_state.conn_state
	statsFixed      = 96                                              // struct iscsi_stats without custom[]
	statsCustomLen  = rspStats + 92                                   // stats.custom_length
	customSize      = 72                                              // struct iscsi_stats_custom: char desc[64]; uint64 value
	customNameLen   = 64                                              // desc, NUL included
	maxCustom       = 32                                              // ISCSI_STATS_CUSTOM_MAX
	uevGetStats     = 20                                              // ISCSI_UEVENT_GET_STATS
	_               = ResponseSize - rspCustom - customSize*maxCustom // the union fills the struct
)

// Session states (iscsid's r_stage, enum iscsi_session_r_stage_e in
// usr/initiator.h) as SESSION_INFO answers them. iscsiadm -m session -P 1
// prints "Internal iscsid Session State:" with "NO CHANGE", "CLEANUP",
// "REOPEN" or "REDIRECT" for 0 to 3, and "Unknown" for anything else or
// when the answer is an error.
const (
	SessionNoChange = 0 // R_STAGE_NO_CHANGE: logged in, or logging in the first time
	SessionCleanup  = 1 // R_STAGE_SESSION_CLEANUP: being torn down
	SessionReopen   = 2 // R_STAGE_SESSION_REOPEN: reconnecting after an error
	SessionRedirect = 3 // R_STAGE_SESSION_REDIRECT: following a target redirect
)

// Connection states (enum iscsi_conn_state, include/iscsi_if.h) as
// SESSION_INFO answers them. iscsiadm -m session -P 1 prints "iSCSI
// Connection State:" with "FREE", "TRANSPORT WAIT", "IN LOGIN", "LOGGED IN",
// "IN LOGOUT", "LOGOUT REQUESTED" or "CLEANUP WAIT" for 0 to 6, and
// "Unknown" for anything else or when the answer is an error.
const (
	ConnFree            = 0
	ConnTransportWait   = 1 // connecting the TCP socket
	ConnInLogin         = 2
	ConnLoggedIn        = 3
	ConnInLogout        = 4
	ConnLogoutRequested = 5
	ConnCleanupWait     = 6 // dropped, waiting to reconnect
)

// Response is one iscsiadm_rsp_t. Which of its fields stock iscsiadm reads
// depends on the command:
//   - every command: Err (0 is success; else an ISCSI_ERR_* code that
//     iscsiadm prints as "initiator reported error (N - text)" and exits
//     with). On success iscsiadm also checks that Command is its request's,
//     else it reports 18 (could not communicate to iscsid).
//   - SESSION_STATS: Stats (iscsiadm -m session -s prints every counter and
//     the custom ones by name).
//   - CONFIG_INAME, CONFIG_IALIAS, CONFIG_FILE: Config, the initiator name,
//     alias, or the path of iscsid.conf, at most 254 bytes.
//   - SESSION_INFO: SessionState and ConnState.
//
// Other commands carry nothing but Err.
type Response struct {
	Command      Command
	Err          iscsierr.Code
	Stats        *nlink.Stats
	Config       string
	SessionState int
	ConnState    int
}

// EncodeResponse encodes r as the 2464 bytes of iscsiadm_rsp_t. The union
// holds what r.Command's answer carries; a field set for another command is
// an error, to catch a handler answering the wrong thing. The stats come in
// the kernel's GET_STATS shape that stock iscsid copies: a struct
// iscsi_uevent header (type ISCSI_UEVENT_GET_STATS, the rest zero: iscsiadm
// reads none of it), struct iscsi_stats, then the custom counters.
func EncodeResponse(r *Response) ([]byte, error) {
	b := make([]byte, ResponseSize)
	ne.PutUint32(b[rspCommand:], uint32(r.Command))
	if iscsierr.Code(int32(r.Err)) != r.Err {
		return nil, fmt.Errorf("stockipc: error code %d does not fit in an int", r.Err)
	}
	ne.PutUint32(b[rspErr:], uint32(int32(r.Err)))
	stats := r.Stats != nil
	config := r.Config != ""
	state := r.SessionState != 0 || r.ConnState != 0
	switch r.Command {
	case CmdSessionStats:
		stats = false
		if r.Stats != nil {
			if err := putStats(b, r.Stats); err != nil {
				return nil, err
			}
		}
	case CmdConfigIName, CmdConfigIAlias, CmdConfigFile:
		config = false
		if len(r.Config) >= rspConfigLen || strings.IndexByte(r.Config, 0) >= 0 {
			return nil, fmt.Errorf("stockipc: %s answer of %d bytes: at most %d without NUL", r.Command, len(r.Config), rspConfigLen-1)
		}
		copy(b[rspConfig:], r.Config)
	case CmdSessionInfo:
		state = false
		if int(int32(r.SessionState)) != r.SessionState || int(int32(r.ConnState)) != r.ConnState {
			return nil, fmt.Errorf("stockipc: session state %d or connection state %d does not fit in an int", r.SessionState, r.ConnState)
		}
		ne.PutUint32(b[rspSessionState:], uint32(int32(r.SessionState)))
		ne.PutUint32(b[rspConnState:], uint32(int32(r.ConnState)))
	}
	switch {
	case stats:
		return nil, fmt.Errorf("stockipc: %s answer carries stats, which only SESSION_STATS has", r.Command)
	case config:
		return nil, fmt.Errorf("stockipc: %s answer carries a config string, which only CONFIG_* have", r.Command)
	case state:
		return nil, fmt.Errorf("stockipc: %s answer carries session states, which only SESSION_INFO has", r.Command)
	}
	return b, nil
}

func putStats(b []byte, s *nlink.Stats) error {
	if len(s.Custom) > maxCustom {
		return fmt.Errorf("stockipc: %d custom counters, iscsiadm_rsp_t holds %d", len(s.Custom), maxCustom)
	}
	ne.PutUint32(b[rspEvent:], uevGetStats)
	ne.PutUint64(b[rspStats:], s.TxDataOctets)
	ne.PutUint64(b[rspStats+8:], s.RxDataOctets)
	for i, c := range s.Counters {
		ne.PutUint32(b[rspStats+16+4*i:], c)
	}
	ne.PutUint32(b[statsCustomLen:], uint32(len(s.Custom)))
	for i, c := range s.Custom {
		if len(c.Name) >= customNameLen || strings.IndexByte(c.Name, 0) >= 0 {
			return fmt.Errorf("stockipc: custom counter name %q: at most %d bytes without NUL", c.Name, customNameLen-1)
		}
		off := rspCustom + i*customSize
		copy(b[off:off+customNameLen], c.Name)
		ne.PutUint64(b[off+customNameLen:], c.Value)
	}
	return nil
}

// DecodeResponse decodes an iscsiadm_rsp_t, reading the union as r.Command's
// answer (see Response). It is the client's half, for tests and tools.
func DecodeResponse(b []byte) (*Response, error) {
	if len(b) != ResponseSize {
		return nil, fmt.Errorf("stockipc: response of %d bytes, iscsiadm_rsp_t has %d", len(b), ResponseSize)
	}
	r := &Response{Command: Command(ne.Uint32(b[rspCommand:])), Err: iscsierr.Code(int32(ne.Uint32(b[rspErr:])))}
	switch r.Command {
	case CmdSessionStats:
		if ne.Uint32(b[rspEvent:]) == 0 && allZero(b[rspUnion:]) {
			break // an error answer: no stats
		}
		s := &nlink.Stats{TxDataOctets: ne.Uint64(b[rspStats:]), RxDataOctets: ne.Uint64(b[rspStats+8:])}
		for i := range s.Counters {
			s.Counters[i] = ne.Uint32(b[rspStats+16+4*i:])
		}
		n := ne.Uint32(b[statsCustomLen:])
		if n > maxCustom {
			return nil, fmt.Errorf("stockipc: stats claim %d custom counters, iscsiadm_rsp_t holds %d", n, maxCustom)
		}
		for i := 0; i < int(n); i++ {
			off := rspCustom + i*customSize
			name, ok := cstring(b[off : off+customNameLen])
			if !ok {
				return nil, fmt.Errorf("stockipc: custom counter %d: name has no NUL within %d bytes", i, customNameLen)
			}
			s.Custom = append(s.Custom, nlink.CustomStat{Name: name, Value: ne.Uint64(b[off+customNameLen:])})
		}
		r.Stats = s
	case CmdConfigIName, CmdConfigIAlias, CmdConfigFile:
		s, ok := cstring(b[rspConfig : rspConfig+rspConfigLen])
		if !ok {
			return nil, fmt.Errorf("stockipc: %s answer has no NUL within %d bytes", r.Command, rspConfigLen)
		}
		r.Config = s
	case CmdSessionInfo:
		r.SessionState = int(int32(ne.Uint32(b[rspSessionState:])))
		r.ConnState = int(int32(ne.Uint32(b[rspConnState:])))
	}
	return r, nil
}

func allZero(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }
