package stockipc

import (
	"fmt"
	"log/slog"
	"strconv"
)

// Command is an iscsiadm request's command (enum iscsiadm_cmd, usr/mgmt_ipc.h;
// the same values in every 2.1.x release).
type Command uint32

// Commands. Stock iscsiadm sends SessionLogin, SessionLogout, SessionStats,
// SessionInfo, ConfigIName, ConfigIAlias, ConfigFile and ImmediateStop;
// stock iscsid sends SessionSync to itself when it starts; SendTargets is for
// offload hosts (qla4xxx) only; the rest have no handler in stock iscsid.
const (
	CmdUnknown           Command = 0
	CmdSessionLogin      Command = 1
	CmdSessionLogout     Command = 2
	CmdSessionActiveStat Command = 4
	CmdConnAdd           Command = 5
	CmdConnRemove        Command = 6
	CmdSessionStats      Command = 7
	CmdConfigIName       Command = 8
	CmdConfigIAlias      Command = 9
	CmdConfigFile        Command = 10
	CmdImmediateStop     Command = 11
	CmdSessionSync       Command = 12
	CmdSessionInfo       Command = 13
	CmdISNSDevAttrQuery  Command = 14
	CmdSendTargets       Command = 15
	CmdNotifyAddNode     Command = 16
	CmdNotifyDelNode     Command = 17
	CmdNotifyAddPortal   Command = 18
	CmdNotifyDelPortal   Command = 19
)

var commandNames = map[Command]string{
	CmdUnknown: "UNKNOWN", CmdSessionLogin: "SESSION_LOGIN", CmdSessionLogout: "SESSION_LOGOUT",
	CmdSessionActiveStat: "SESSION_ACTIVESTAT", CmdConnAdd: "CONN_ADD", CmdConnRemove: "CONN_REMOVE",
	CmdSessionStats: "SESSION_STATS", CmdConfigIName: "CONFIG_INAME", CmdConfigIAlias: "CONFIG_IALIAS",
	CmdConfigFile: "CONFIG_FILE", CmdImmediateStop: "IMMEDIATE_STOP", CmdSessionSync: "SESSION_SYNC",
	CmdSessionInfo: "SESSION_INFO", CmdISNSDevAttrQuery: "ISNS_DEV_ATTR_QUERY", CmdSendTargets: "SEND_TARGETS",
	CmdNotifyAddNode: "NOTIFY_ADD_NODE", CmdNotifyDelNode: "NOTIFY_DEL_NODE",
	CmdNotifyAddPortal: "NOTIFY_ADD_PORTAL", CmdNotifyDelPortal: "NOTIFY_DEL_PORTAL",
}

// String names the command as mgmt_ipc.h does, without MGMT_IPC_.
func (c Command) String() string {
	if s, ok := commandNames[c]; ok {
		return s
	}
	return "command " + strconv.FormatUint(uint64(c), 10)
}

// Request is one decoded iscsiadm_req_t.
type Request struct {
	Command Command
	// PayloadLen is the request's payload_len: the length of a payload
	// following the struct, used only by the NOTIFY_* commands, which stock
	// iscsiadm never sends. Requests with a payload are not decoded.
	PayloadLen uint32
	// Size is the request's length in bytes, which tells which open-iscsi
	// release sent it (Versions). EncodeRequest writes that layout; zero
	// means 16104 bytes (2.1.1 to 2.1.10, Debian 12's 2.1.8).
	Size int
	// SID is the session id of SESSION_LOGOUT, SESSION_STATS, SESSION_INFO
	// and SESSION_SYNC (u.session.sid).
	SID int
	// Record is the node record of SESSION_LOGIN and SESSION_SYNC: every
	// key idbm_recinfo_node lists for this release and this iface's address
	// family, spelled as stock writes it in a record file ("node.name",
	// "node.conn[0].address", "node.session.auth.authmethod" = "CHAP",
	// "node.conn[0].iscsi.HeaderDigest" = "CRC32C,None"; an empty string
	// where stock writes nothing). Keys are those of the sending release:
	// 2.1.11 has node.session.conn_reopen_log_freq, master
	// node.session.sess_reopen_log_freq and node.conn[0].tcp.congestion_control,
	// 2.1.0 has no node.session.auth.chap_algs. The hidden password lengths
	// are not keys: they are checked to be the passwords' lengths.
	Record map[string]string
	// Multiple is the record's session.multiple (SESSION_LOGIN): iscsiadm
	// sets it when node.session.nr_sessions is above 1, and for
	// `-m session -r SID -o new` (one more session to that portal); iscsid
	// then logs in even if a session to the portal exists.
	Multiple bool
	// Unsupported says why the request was not decoded further (a command
	// stock iscsiadm does not send, or a payload); empty when it was.
	Unsupported string
}

// Version names the open-iscsi releases whose layout the request has.
func (r *Request) Version() string { return Versions(r.sizeOrDefault()) }

func (r *Request) sizeOrDefault() int {
	if r.Size == 0 {
		return defaultSize
	}
	return r.Size
}

// LogValue shows the request without its CHAP secrets, for logging.
func (r *Request) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("command", r.Command.String()), slog.Int("size", r.Size)}
	if r.SID != 0 {
		attrs = append(attrs, slog.Int("sid", r.SID))
	}
	if r.Record != nil {
		for _, k := range []string{"node.name", "node.conn[0].address", "node.conn[0].port", "iface.iscsi_ifacename"} {
			attrs = append(attrs, slog.String(k, r.Record[k]))
		}
	}
	if r.Unsupported != "" {
		attrs = append(attrs, slog.String("unsupported", r.Unsupported))
	}
	return slog.GroupValue(attrs...)
}

// IsSecretKey says whether a record key holds a CHAP secret (IDBM_MASKED),
// which must not be logged.
func IsSecretKey(key string) bool {
	for _, l := range allLayouts {
		if f := l.field(key); f != nil {
			return f.secret
		}
	}
	return false
}

// DecodeRequest decodes one iscsiadm_req_t. Its length picks the layout
// (KnownSizes); a length no layout has is an *UnknownSizeError. Commands
// stock iscsiadm does not send come back with Unsupported set and no error.
// Every record value is checked: strings end within their arrays and hold no
// control characters, enums are in range, CHAP algorithms known.
func DecodeRequest(b []byte) (*Request, error) {
	l := layoutFor(len(b))
	if l == nil {
		return nil, &UnknownSizeError{Size: len(b)}
	}
	r := &Request{
		Command:    Command(ne.Uint32(b[offCommand:])),
		PayloadLen: ne.Uint32(b[offPayloadLen:]),
		Size:       len(b),
	}
	if r.PayloadLen != 0 {
		r.Unsupported = fmt.Sprintf("payload of %d bytes after the request", r.PayloadLen)
		return r, nil
	}
	rec := b[offRec : offRec+l.recSize]
	switch r.Command {
	case CmdSessionLogin, CmdSessionSync:
		m, err := l.decodeRecord(rec)
		if err != nil {
			return nil, fmt.Errorf("%s request: %w", r.Command, err)
		}
		r.Record = m
		r.Multiple = rec[l.sessionMultiple] != 0
		if r.Command == CmdSessionSync {
			r.SID = int(int32(ne.Uint32(b[offSID:])))
		}
	case CmdSessionLogout, CmdSessionStats, CmdSessionInfo:
		r.SID = int(int32(ne.Uint32(b[offSID:])))
	case CmdConfigIName, CmdConfigIAlias, CmdConfigFile, CmdImmediateStop:
	default:
		r.Unsupported = fmt.Sprintf("%s is not a request stock iscsiadm sends to iscsid for software iSCSI", r.Command)
	}
	return r, nil
}

// EncodeRequest encodes r as the iscsiadm_req_t of the layout r.Size names,
// as stock iscsiadm fills it: zero but for the command, the sid and the
// record (whose list pointers and the fields idbm does not list stay zero).
// Record keys missing from r.Record are zero (an empty string, 0, the first
// option). Unsupported requests encode their command only.
func EncodeRequest(r *Request) ([]byte, error) {
	n := r.sizeOrDefault()
	l := layoutFor(n)
	if l == nil {
		return nil, &UnknownSizeError{Size: n}
	}
	b := make([]byte, n)
	ne.PutUint32(b[offCommand:], uint32(r.Command))
	ne.PutUint32(b[offPayloadLen:], r.PayloadLen)
	ne.PutUint32(b[offSID:], uint32(int32(r.SID)))
	if int(int32(r.SID)) != r.SID {
		return nil, fmt.Errorf("stockipc: sid %d does not fit in an int", r.SID)
	}
	if r.Record != nil {
		rec := b[offRec : offRec+l.recSize]
		if err := l.encodeRecord(rec, r.Record); err != nil {
			return nil, err
		}
		if r.Multiple {
			rec[l.sessionMultiple] = 1
		}
	}
	return b, nil
}
