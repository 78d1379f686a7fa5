package stockipc

// The few ISCSI_ERR_* codes (include/iscsi_err.h) the server answers by
// itself. They are the values iscsiadm prints and exits with; kept private
// and few so that a shared package of the codes can replace them.
const (
	errGeneric        = 1  // ISCSI_ERR: stock's answer to CONN_ADD and CONN_REMOVE
	errInval          = 7  // ISCSI_ERR_INVAL: "invalid parameter"
	errInternal       = 9  // ISCSI_ERR_INTERNAL: "internal error"
	errAccess         = 13 // ISCSI_ERR_ACCESS: "daemon access denied"
	errInvalidMgmtReq = 16 // ISCSI_ERR_INVALID_MGMT_REQ: "Unknown request"
)
