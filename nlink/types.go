package nlink

import "fmt"

// MessageType is the type of an iscsi_uevent: a request (10..43) or a kernel
// event (101..111).
type MessageType uint32

// Requests.
const (
	CreateSession  MessageType = 11
	DestroySession MessageType = 12
	CreateConn     MessageType = 13
	DestroyConn    MessageType = 14
	BindConn       MessageType = 15
	SetParam       MessageType = 16
	StartConn      MessageType = 17
	StopConn       MessageType = 18
	SendPDU        MessageType = 19
	GetStats       MessageType = 20
	SetHostParam   MessageType = 26
	UnbindSession  MessageType = 27
)

// Endpoint requests: transports whose connection the kernel makes itself
// (iSER: an RDMA connection through rdma_cm) have userspace ask for an
// endpoint and bind its handle where iscsi_tcp binds a socket.
const (
	EPConnect          MessageType = 22
	EPPoll             MessageType = 23
	EPDisconnect       MessageType = 24
	CreateBoundSession MessageType = 28
)

// Kernel events.
const (
	EventRecvPDU        MessageType = 101
	EventConnError      MessageType = 102
	EventIfError        MessageType = 103
	EventDestroySession MessageType = 104
	EventUnbindSession  MessageType = 105
	EventCreateSession  MessageType = 106
	EventConnLoginState MessageType = 109
	EventHostEvent      MessageType = 110
)

// EventsLost is no kernel message: a Conn delivers it to every Subscription
// when the kernel dropped events because the socket's buffer was full
// (ENOBUFS). Whatever was lost (a connection error, a login response) will not
// come again: a subscriber must ask the kernel where its session stands
// (Conn.LinkState).
const EventsLost MessageType = 1<<32 - 1

var messageNames = map[MessageType]string{
	CreateSession: "CREATE_SESSION", DestroySession: "DESTROY_SESSION", CreateConn: "CREATE_CONN",
	DestroyConn: "DESTROY_CONN", BindConn: "BIND_CONN", SetParam: "SET_PARAM", StartConn: "START_CONN",
	StopConn: "STOP_CONN", SendPDU: "SEND_PDU", GetStats: "GET_STATS", SetHostParam: "SET_HOST_PARAM",
	UnbindSession: "UNBIND_SESSION", EPConnect: "TRANSPORT_EP_CONNECT", EPPoll: "TRANSPORT_EP_POLL",
	EPDisconnect: "TRANSPORT_EP_DISCONNECT", CreateBoundSession: "CREATE_BOUND_SESSION",
	EventRecvPDU: "RECV_PDU", EventConnError: "CONN_ERROR", EventIfError: "IF_ERROR",
	EventDestroySession: "DESTROY_SESSION event", EventUnbindSession: "UNBIND_SESSION event",
	EventCreateSession: "CREATE_SESSION event", EventConnLoginState: "CONN_LOGIN_STATE",
	EventHostEvent: "HOST_EVENT", EventsLost: "events lost",
}

func (t MessageType) String() string {
	if s, ok := messageNames[t]; ok {
		return s
	}
	return fmt.Sprintf("iscsi_uevent %d", uint32(t))
}

// HostParam is an iSCSI host (HBA) parameter of SET_HOST_PARAM (enum
// iscsi_host_param), shown in /sys/class/iscsi_host/hostN/.
type HostParam uint32

// Host parameters.
const (
	HostParamHWAddress     HostParam = 0
	HostParamInitiatorName HostParam = 1
	HostParamNetdevName    HostParam = 2
	HostParamIPAddress     HostParam = 3
)

func (p HostParam) String() string {
	if s, ok := map[HostParam]string{HostParamHWAddress: "HWADDRESS", HostParamInitiatorName: "INITIATOR_NAME",
		HostParamNetdevName: "NETDEV_NAME", HostParamIPAddress: "IPADDRESS"}[p]; ok {
		return s
	}
	return fmt.Sprintf("host param %d", uint32(p))
}

// StopFlag says how STOP_CONN stops a connection.
type StopFlag uint32

// Stop flags.
const (
	// StopTerminate ends the connection for good (logout, shutdown).
	StopTerminate StopFlag = 1
	// StopSuspend pauses it.
	StopSuspend StopFlag = 2
	// StopRecover stops it for a relogin, keeping the session and its queued
	// I/O.
	StopRecover StopFlag = 3
)

// ConnState is enum iscsi_conn_state, which open-iscsi also uses for its own
// connection states.
type ConnState uint32

// Connection states.
const (
	ConnFree            ConnState = 0
	ConnTransportWait   ConnState = 1
	ConnInLogin         ConnState = 2
	ConnLoggedIn        ConnState = 3
	ConnInLogout        ConnState = 4
	ConnLogoutRequested ConnState = 5
	ConnCleanupWait     ConnState = 6
)

// String names the state the way iscsiadm prints it.
func (s ConnState) String() string {
	switch s {
	case ConnFree:
		return "FREE"
	case ConnTransportWait:
		return "TRANSPORT WAIT"
	case ConnInLogin:
		return "IN LOGIN"
	case ConnLoggedIn:
		return "LOGGED IN"
	case ConnInLogout:
		return "IN LOGOUT"
	case ConnLogoutRequested:
		return "LOGOUT REQUESTED"
	case ConnCleanupWait:
		return "CLEANUP WAIT"
	}
	return fmt.Sprintf("conn state %d", uint32(s))
}

// Capability bits of an iSCSI transport (/sys/class/iscsi_transport/*/caps).
const (
	CapRecoveryL0 = 0x1
	CapRecoveryL1 = 0x2
	CapRecoveryL2 = 0x4
	CapMultiR2T   = 0x8
	CapHdrDigest  = 0x10
	CapDataDigest = 0x20
	CapMultiConn  = 0x40
	CapTextNego   = 0x80
)

// ConnError is enum iscsi_err: why the kernel reported a connection error.
type ConnError uint32

// Connection errors.
const (
	ErrDataSN           ConnError = 1001
	ErrDataOffset       ConnError = 1002
	ErrMaxCmdSN         ConnError = 1003
	ErrExpCmdSN         ConnError = 1004
	ErrBadOpcode        ConnError = 1005
	ErrDataLen          ConnError = 1006
	ErrAHSLen           ConnError = 1007
	ErrProto            ConnError = 1008
	ErrLUN              ConnError = 1009
	ErrBadITT           ConnError = 1010
	ErrConnFailed       ConnError = 1011
	ErrR2TSN            ConnError = 1012
	ErrSessionFailed    ConnError = 1013
	ErrHdrDigest        ConnError = 1014
	ErrDataDigest       ConnError = 1015
	ErrParamNotFound    ConnError = 1016
	ErrNoSCSICmd        ConnError = 1017
	ErrInvalidHost      ConnError = 1018
	ErrXmitFailed       ConnError = 1019
	ErrTCPConnClose     ConnError = 1020
	ErrSCSIEHSessionRst ConnError = 1021
	ErrNOPTimedOut      ConnError = 1022
)

var connErrorNames = map[ConnError]string{
	ErrDataSN: "ISCSI_ERR_DATASN", ErrDataOffset: "ISCSI_ERR_DATA_OFFSET", ErrMaxCmdSN: "ISCSI_ERR_MAX_CMDSN",
	ErrExpCmdSN: "ISCSI_ERR_EXP_CMDSN", ErrBadOpcode: "ISCSI_ERR_BAD_OPCODE", ErrDataLen: "ISCSI_ERR_DATALEN",
	ErrAHSLen: "ISCSI_ERR_AHSLEN", ErrProto: "ISCSI_ERR_PROTO", ErrLUN: "ISCSI_ERR_LUN",
	ErrBadITT: "ISCSI_ERR_BAD_ITT", ErrConnFailed: "ISCSI_ERR_CONN_FAILED", ErrR2TSN: "ISCSI_ERR_R2TSN",
	ErrSessionFailed: "ISCSI_ERR_SESSION_FAILED", ErrHdrDigest: "ISCSI_ERR_HDR_DGST",
	ErrDataDigest: "ISCSI_ERR_DATA_DGST", ErrParamNotFound: "ISCSI_ERR_PARAM_NOT_FOUND",
	ErrNoSCSICmd: "ISCSI_ERR_NO_SCSI_CMD", ErrInvalidHost: "ISCSI_ERR_INVALID_HOST",
	ErrXmitFailed: "ISCSI_ERR_XMIT_FAILED", ErrTCPConnClose: "ISCSI_ERR_TCP_CONN_CLOSE",
	ErrSCSIEHSessionRst: "ISCSI_ERR_SCSI_EH_SESSION_RST", ErrNOPTimedOut: "ISCSI_ERR_NOP_TIMEDOUT",
}

// String returns the kernel's name and number, e.g. "ISCSI_ERR_TCP_CONN_CLOSE (1020)".
func (e ConnError) String() string {
	if s, ok := connErrorNames[e]; ok {
		return fmt.Sprintf("%s (%d)", s, uint32(e))
	}
	return fmt.Sprintf("iscsi_err %d", uint32(e))
}

// Param is enum iscsi_param: the value a SET_PARAM sets.
type Param uint32

// Parameters goiscsi sets (the kernel knows more, for offload transports).
const (
	ParamMaxRecvDLength    Param = 0
	ParamMaxXmitDLength    Param = 1
	ParamHdrDigestEn       Param = 2
	ParamDataDigestEn      Param = 3
	ParamInitialR2TEn      Param = 4
	ParamMaxR2T            Param = 5
	ParamImmDataEn         Param = 6
	ParamFirstBurst        Param = 7
	ParamMaxBurst          Param = 8
	ParamPDUInOrderEn      Param = 9
	ParamDataSeqInOrderEn  Param = 10
	ParamERL               Param = 11
	ParamIFMarkerEn        Param = 12
	ParamOFMarkerEn        Param = 13
	ParamExpStatSN         Param = 14
	ParamTargetName        Param = 15
	ParamTPGT              Param = 16
	ParamPersistentAddress Param = 17
	ParamPersistentPort    Param = 18
	ParamSessRecoveryTmo   Param = 19
	ParamConnPort          Param = 20
	ParamConnAddress       Param = 21
	ParamUsername          Param = 22
	ParamUsernameIn        Param = 23
	ParamPassword          Param = 24
	ParamPasswordIn        Param = 25
	ParamFastAbort         Param = 26
	ParamAbortTmo          Param = 27
	ParamLUResetTmo        Param = 28
	ParamHostResetTmo      Param = 29
	ParamPingTmo           Param = 30
	ParamRecvTmo           Param = 31
	ParamIfaceName         Param = 32
	ParamISID              Param = 33
	ParamInitiatorName     Param = 34
	ParamTgtResetTmo       Param = 35
	ParamTargetAlias       Param = 36
	ParamDiscoverySess     Param = 43
	ParamDefTime2Wait      Param = 49
	ParamDefTime2Retain    Param = 50
)

var paramNames = map[Param]string{
	ParamMaxRecvDLength: "MAX_RECV_DLENGTH", ParamMaxXmitDLength: "MAX_XMIT_DLENGTH",
	ParamHdrDigestEn: "HDRDGST_EN", ParamDataDigestEn: "DATADGST_EN", ParamInitialR2TEn: "INITIAL_R2T_EN",
	ParamMaxR2T: "MAX_R2T", ParamImmDataEn: "IMM_DATA_EN", ParamFirstBurst: "FIRST_BURST",
	ParamMaxBurst: "MAX_BURST", ParamPDUInOrderEn: "PDU_INORDER_EN", ParamDataSeqInOrderEn: "DATASEQ_INORDER_EN",
	ParamERL: "ERL", ParamIFMarkerEn: "IFMARKER_EN", ParamOFMarkerEn: "OFMARKER_EN", ParamExpStatSN: "EXP_STATSN",
	ParamTargetName: "TARGET_NAME", ParamTPGT: "TPGT", ParamPersistentAddress: "PERSISTENT_ADDRESS",
	ParamPersistentPort: "PERSISTENT_PORT", ParamSessRecoveryTmo: "SESS_RECOVERY_TMO",
	ParamConnPort: "CONN_PORT", ParamConnAddress: "CONN_ADDRESS", ParamUsername: "USERNAME",
	ParamUsernameIn: "USERNAME_IN", ParamPassword: "PASSWORD", ParamPasswordIn: "PASSWORD_IN",
	ParamFastAbort: "FAST_ABORT", ParamAbortTmo: "ABORT_TMO", ParamLUResetTmo: "LU_RESET_TMO",
	ParamHostResetTmo: "HOST_RESET_TMO", ParamPingTmo: "PING_TMO", ParamRecvTmo: "RECV_TMO",
	ParamIfaceName: "IFACE_NAME", ParamISID: "ISID", ParamInitiatorName: "INITIATOR_NAME",
	ParamTgtResetTmo: "TGT_RESET_TMO", ParamTargetAlias: "TARGET_ALIAS", ParamDiscoverySess: "DISCOVERY_SESS",
	ParamDefTime2Wait: "DEF_TIME2WAIT", ParamDefTime2Retain: "DEF_TIME2RETAIN",
}

// String returns the kernel's name without the ISCSI_PARAM_ prefix.
func (p Param) String() string {
	if s, ok := paramNames[p]; ok {
		return s
	}
	return fmt.Sprintf("param %d", uint32(p))
}

// Secret reports whether the parameter's value is a CHAP secret, which must
// never be logged.
func (p Param) Secret() bool { return p == ParamPassword || p == ParamPasswordIn }
