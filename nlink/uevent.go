package nlink

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/goiscsi/goiscsi/pdu"
)

// UeventSize is sizeof(struct iscsi_uevent) on 64-bit Linux.
const UeventSize = 56

// Offsets inside struct iscsi_uevent.
const (
	offType    = 0
	offIfError = 4
	offHandle  = 8
	offU       = 16 // request union, 24 bytes
	offR       = 40 // reply/event union, 16 bytes
)

var ne = binary.NativeEndian

// Request is one message from userspace to the kernel. Which fields matter
// depends on Type; the rest are zero.
type Request struct {
	Type   MessageType
	Handle uint64 // transport handle
	SID    uint32
	CID    uint32
	// CreateSession.
	InitialCmdSN uint32
	CmdsMax      uint16
	QueueDepth   uint16
	// BindConn: transport_eph, the TCP socket's file descriptor in the
	// sender's process, or the handle of an endpoint (EPConnect's reply).
	FD      uint64
	Leading bool
	// CreateBoundSession, EPPoll and EPDisconnect: the endpoint's handle.
	EP uint64
	// EPConnect: the portal, and whether the kernel may return before the
	// connection is up (EPPoll then says when it is).
	Addr        netip.AddrPort
	NonBlocking bool
	// EPPoll: how long the kernel waits for the endpoint to come up.
	TimeoutMS uint32
	// SetParam and SetHostParam. Value goes to the kernel as a NUL-terminated
	// string.
	Param Param
	Value string
	// SetHostParam.
	HostNo    uint32
	HostParam HostParam
	// StopConn.
	Flag StopFlag
	// SendPDU: header (48 bytes + AHS) and data, padded to 4 bytes.
	PDU *pdu.PDU
}

// String summarises r for logs, without secrets.
func (r *Request) String() string {
	switch r.Type {
	case SetParam:
		v := r.Value
		if r.Param.Secret() {
			v = "********"
		}
		return fmt.Sprintf("%v sid=%d cid=%d %v=%q", r.Type, r.SID, r.CID, r.Param, v)
	case SetHostParam:
		return fmt.Sprintf("%v host=%d %v=%q", r.Type, r.HostNo, r.HostParam, r.Value)
	case SendPDU:
		return fmt.Sprintf("%v sid=%d cid=%d %v", r.Type, r.SID, r.CID, r.PDU.Header.Opcode())
	case EPConnect:
		return fmt.Sprintf("%v %v non_blocking=%v", r.Type, r.Addr, r.NonBlocking)
	case EPPoll, EPDisconnect, CreateBoundSession:
		return fmt.Sprintf("%v ep=%#x", r.Type, r.EP)
	}
	return fmt.Sprintf("%v sid=%d cid=%d", r.Type, r.SID, r.CID)
}

// MarshalBinary encodes r as an iscsi_uevent followed by its payload.
func (r *Request) MarshalBinary() ([]byte, error) {
	b := make([]byte, UeventSize, UeventSize+64)
	ne.PutUint32(b[offType:], uint32(r.Type))
	ne.PutUint64(b[offHandle:], r.Handle)
	u := b[offU:]
	switch r.Type {
	case CreateSession:
		ne.PutUint32(u[0:], r.InitialCmdSN)
		ne.PutUint16(u[4:], r.CmdsMax)
		ne.PutUint16(u[6:], r.QueueDepth)
	case DestroySession, UnbindSession:
		ne.PutUint32(u[0:], r.SID)
	case CreateConn, DestroyConn, StartConn, GetStats:
		ne.PutUint32(u[0:], r.SID)
		ne.PutUint32(u[4:], r.CID)
	case BindConn:
		ne.PutUint32(u[0:], r.SID)
		ne.PutUint32(u[4:], r.CID)
		ne.PutUint64(u[8:], r.FD)
		if r.Leading {
			ne.PutUint32(u[16:], 1)
		}
	case SetParam:
		ne.PutUint32(u[0:], r.SID)
		ne.PutUint32(u[4:], r.CID)
		ne.PutUint32(u[8:], uint32(r.Param))
		ne.PutUint32(u[12:], uint32(len(r.Value)+1))
		b = append(append(b, r.Value...), 0)
	case SetHostParam:
		ne.PutUint32(u[0:], r.HostNo)
		ne.PutUint32(u[4:], uint32(r.HostParam))
		ne.PutUint32(u[8:], uint32(len(r.Value)+1))
		b = append(append(b, r.Value...), 0)
	case StopConn:
		ne.PutUint32(u[0:], r.SID)
		ne.PutUint32(u[4:], r.CID)
		ne.PutUint32(u[16:], uint32(r.Flag))
	case CreateBoundSession, EPConnect, EPPoll, EPDisconnect:
		var err error
		if b, err = r.marshalEndpoint(b); err != nil {
			return nil, err
		}
	case SendPDU:
		if r.PDU == nil {
			return nil, fmt.Errorf("nlink: SEND_PDU without a PDU")
		}
		ne.PutUint32(u[0:], r.SID)
		ne.PutUint32(u[4:], r.CID)
		var err error
		start := len(b)
		// The kernel adds digests itself; userspace sends header and padded data.
		b, err = r.PDU.Append(b, pdu.Digests{})
		if err != nil {
			return nil, err
		}
		// Append may have moved b: write the sizes through b itself.
		hdr := pdu.BHSLength + len(r.PDU.AHS)
		ne.PutUint32(b[offU+8:], uint32(hdr))
		ne.PutUint32(b[offU+12:], uint32(len(b)-start-hdr))
	default:
		return nil, fmt.Errorf("nlink: cannot encode request %v", r.Type)
	}
	return b, nil
}

// paramValue is the NUL-terminated string value of length n (NUL included)
// that a SET_PARAM or SET_HOST_PARAM carries in payload.
func paramValue(t MessageType, n uint32, payload []byte) (string, error) {
	if n < 1 || int64(n) > int64(len(payload)) || payload[n-1] != 0 {
		return "", fmt.Errorf("nlink: %v value of length %d in a %d-byte payload is not NUL-terminated", t, n, len(payload))
	}
	return string(payload[:n-1]), nil
}

// UnmarshalBinary decodes a request, as the kernel would receive it.
func (r *Request) UnmarshalBinary(b []byte) error {
	if len(b) < UeventSize {
		return fmt.Errorf("nlink: request of %d bytes, need %d", len(b), UeventSize)
	}
	*r = Request{Type: MessageType(ne.Uint32(b[offType:])), Handle: ne.Uint64(b[offHandle:])}
	u, payload := b[offU:offR], b[UeventSize:]
	switch r.Type {
	case CreateSession:
		r.InitialCmdSN, r.CmdsMax, r.QueueDepth = ne.Uint32(u[0:]), ne.Uint16(u[4:]), ne.Uint16(u[6:])
	case DestroySession, UnbindSession:
		r.SID = ne.Uint32(u[0:])
	case CreateConn, DestroyConn, StartConn, GetStats:
		r.SID, r.CID = ne.Uint32(u[0:]), ne.Uint32(u[4:])
	case BindConn:
		r.SID, r.CID, r.FD, r.Leading = ne.Uint32(u[0:]), ne.Uint32(u[4:]), ne.Uint64(u[8:]), ne.Uint32(u[16:]) != 0
	case SetParam:
		r.SID, r.CID, r.Param = ne.Uint32(u[0:]), ne.Uint32(u[4:]), Param(ne.Uint32(u[8:]))
		v, err := paramValue(r.Type, ne.Uint32(u[12:]), payload)
		if err != nil {
			return err
		}
		r.Value = v
	case SetHostParam:
		r.HostNo, r.HostParam = ne.Uint32(u[0:]), HostParam(ne.Uint32(u[4:]))
		v, err := paramValue(r.Type, ne.Uint32(u[8:]), payload)
		if err != nil {
			return err
		}
		r.Value = v
	case StopConn:
		r.SID, r.CID, r.Flag = ne.Uint32(u[0:]), ne.Uint32(u[4:]), StopFlag(ne.Uint32(u[16:]))
	case CreateBoundSession, EPConnect, EPPoll, EPDisconnect:
		return r.unmarshalEndpoint(u, payload)
	case SendPDU:
		r.SID, r.CID = ne.Uint32(u[0:]), ne.Uint32(u[4:])
		hdr, data := int(ne.Uint32(u[8:])), int(ne.Uint32(u[12:]))
		if hdr < pdu.BHSLength || hdr > len(payload) || data > len(payload)-hdr {
			return fmt.Errorf("nlink: SEND_PDU header %d and data %d bytes in a %d-byte payload", hdr, data, len(payload))
		}
		p := &pdu.PDU{}
		copy(p.Header[:], payload)
		p.AHS = append([]byte(nil), payload[pdu.BHSLength:hdr]...)
		dl := p.Header.DataSegmentLength()
		if dl > data {
			return fmt.Errorf("nlink: SEND_PDU claims %d data bytes, carries %d", dl, data)
		}
		p.Data = append([]byte(nil), payload[hdr:hdr+dl]...)
		r.PDU = p
	default:
		return fmt.Errorf("nlink: unknown request %v", r.Type)
	}
	return nil
}

// Reply is the kernel's answer to a request: the request's uevent with the reply
// union filled, or IF_ERROR with a negative errno.
type Reply struct {
	// Type is the request's type, or EventIfError.
	Type MessageType
	// Errno is the error of an IF_ERROR reply, or of a request whose reply
	// carries a non-zero retcode (BIND_CONN, START_CONN, SEND_PDU).
	Errno  syscall.Errno
	SID    uint32
	CID    uint32
	HostNo uint32
	// EP is EPConnect's endpoint handle.
	EP uint64
	// Connected is EPPoll's answer: the endpoint is up (retcode 1; 0 is
	// not yet, a negative retcode an error in Errno).
	Connected bool
}

// MarshalBinary encodes a reply as the kernel sends it.
func (r *Reply) MarshalBinary() ([]byte, error) {
	b := make([]byte, UeventSize)
	ne.PutUint32(b[offType:], uint32(r.Type))
	rr := b[offR:]
	switch r.Type {
	case EventIfError:
		ne.PutUint32(b[offIfError:], uint32(-int32(r.Errno)))
	case CreateSession, CreateBoundSession:
		ne.PutUint32(rr[0:], r.SID)
		ne.PutUint32(rr[4:], r.HostNo)
	case CreateConn:
		ne.PutUint32(rr[0:], r.SID)
		ne.PutUint32(rr[4:], r.CID)
	case EPConnect:
		ne.PutUint64(rr[0:], r.EP)
	case EPPoll:
		v := uint32(-int32(r.Errno))
		if r.Errno == 0 && r.Connected {
			v = 1
		}
		ne.PutUint32(rr[0:], v)
	default:
		ne.PutUint32(rr[0:], uint32(-int32(r.Errno)))
	}
	return b, nil
}

// UnmarshalBinary decodes the kernel's reply to a request of type req.
func (r *Reply) UnmarshalBinary(b []byte) error {
	if len(b) < UeventSize {
		return fmt.Errorf("nlink: reply of %d bytes, need %d", len(b), UeventSize)
	}
	*r = Reply{Type: MessageType(ne.Uint32(b[offType:]))}
	rr := b[offR:]
	switch r.Type {
	case EventIfError:
		r.Errno = errno(ne.Uint32(b[offIfError:]))
		if r.Errno == 0 {
			r.Errno = syscall.EIO
		}
	case CreateSession, CreateBoundSession:
		r.SID, r.HostNo = ne.Uint32(rr[0:]), ne.Uint32(rr[4:])
	case CreateConn:
		r.SID, r.CID = ne.Uint32(rr[0:]), ne.Uint32(rr[4:])
	case EPConnect:
		r.EP = ne.Uint64(rr[0:])
	case EPPoll:
		// A retcode, not an errno: 1 is up, 0 not yet, below 0 failed.
		switch rc := int32(ne.Uint32(rr[0:])); {
		case rc > 0:
			r.Connected = true
		case rc < 0:
			r.Errno = errno(uint32(rc))
		}
	default:
		r.Errno = errno(ne.Uint32(rr[0:]))
	}
	return nil
}

// errno turns the kernel's negative errno (stored in an unsigned field) into an
// Errno.
func errno(v uint32) syscall.Errno {
	n := int32(v)
	if n < 0 {
		n = -n
	}
	return syscall.Errno(n)
}

// Event is a message the kernel multicasts to the iSCSI daemon group.
type Event struct {
	Type   MessageType
	SID    uint32
	CID    uint32
	HostNo uint32
	// PDU is the received PDU of an EventRecvPDU: header and data (the kernel
	// forwards no AHS).
	PDU *pdu.PDU
	// Error is the reason of an EventConnError.
	Error ConnError
	// State is the state of an EventConnLoginState.
	State ConnState
	// Stats are the statistics a GET_STATS request produced.
	Stats *Stats
}

func (e Event) String() string {
	switch e.Type {
	case EventRecvPDU:
		return fmt.Sprintf("%v sid=%d cid=%d %v", e.Type, e.SID, e.CID, e.PDU.Header.Opcode())
	case EventConnError:
		return fmt.Sprintf("%v sid=%d cid=%d %v", e.Type, e.SID, e.CID, e.Error)
	}
	return fmt.Sprintf("%v sid=%d cid=%d host=%d", e.Type, e.SID, e.CID, e.HostNo)
}

// MarshalBinary encodes an event as the kernel sends it.
func (e *Event) MarshalBinary() ([]byte, error) {
	b := make([]byte, UeventSize)
	ne.PutUint32(b[offType:], uint32(e.Type))
	rr := b[offR:]
	switch e.Type {
	case EventRecvPDU:
		ne.PutUint32(rr[0:], e.SID)
		ne.PutUint32(rr[4:], e.CID)
		if e.PDU == nil {
			return nil, fmt.Errorf("nlink: RECV_PDU without a PDU")
		}
		b = append(b, e.PDU.Header[:]...)
		b = append(b, e.PDU.Data...)
	case EventConnError, EventConnLoginState:
		ne.PutUint32(rr[0:], e.SID)
		ne.PutUint32(rr[4:], e.CID)
		v := uint32(e.Error)
		if e.Type == EventConnLoginState {
			v = uint32(e.State)
		}
		ne.PutUint32(rr[8:], v)
	case EventUnbindSession, EventCreateSession:
		ne.PutUint32(rr[0:], e.SID)
		ne.PutUint32(rr[4:], e.HostNo)
	case EventDestroySession:
		ne.PutUint32(rr[0:], e.HostNo)
		ne.PutUint32(rr[4:], e.SID)
	case EventHostEvent:
		ne.PutUint32(rr[0:], e.HostNo)
	case GetStats:
		ne.PutUint32(b[offU:], e.SID)
		ne.PutUint32(b[offU+4:], e.CID)
		if e.Stats == nil {
			return nil, fmt.Errorf("nlink: GET_STATS event without stats")
		}
		b = append(b, e.Stats.marshal()...)
	default:
		return nil, fmt.Errorf("nlink: cannot encode event %v", e.Type)
	}
	return b, nil
}

// UnmarshalBinary decodes an event. It never panics on malformed input.
func (e *Event) UnmarshalBinary(b []byte) error {
	if len(b) < UeventSize {
		return fmt.Errorf("nlink: event of %d bytes, need %d", len(b), UeventSize)
	}
	*e = Event{Type: MessageType(ne.Uint32(b[offType:]))}
	rr, payload := b[offR:UeventSize], b[UeventSize:]
	switch e.Type {
	case EventRecvPDU:
		e.SID, e.CID = ne.Uint32(rr[0:]), ne.Uint32(rr[4:])
		if len(payload) < pdu.BHSLength {
			return fmt.Errorf("nlink: RECV_PDU with %d bytes after the uevent, need a 48-byte header", len(payload))
		}
		p := &pdu.PDU{}
		copy(p.Header[:], payload)
		data := payload[pdu.BHSLength:]
		if dl := p.Header.DataSegmentLength(); dl <= len(data) {
			data = data[:dl]
		} else {
			return fmt.Errorf("nlink: RECV_PDU %v claims %d data bytes, carries %d", p.Header.Opcode(), dl, len(data))
		}
		p.Data = append([]byte(nil), data...)
		e.PDU = p
	case EventConnError:
		e.SID, e.CID, e.Error = ne.Uint32(rr[0:]), ne.Uint32(rr[4:]), ConnError(ne.Uint32(rr[8:]))
	case EventConnLoginState:
		e.SID, e.CID, e.State = ne.Uint32(rr[0:]), ne.Uint32(rr[4:]), ConnState(ne.Uint32(rr[8:]))
	case EventUnbindSession, EventCreateSession, CreateSession:
		e.Type = normalizeCreate(e.Type)
		e.SID, e.HostNo = ne.Uint32(rr[0:]), ne.Uint32(rr[4:])
	case EventDestroySession:
		e.HostNo, e.SID = ne.Uint32(rr[0:]), ne.Uint32(rr[4:])
	case EventHostEvent:
		e.HostNo = ne.Uint32(rr[0:])
	case GetStats:
		e.SID, e.CID = ne.Uint32(b[offU:]), ne.Uint32(b[offU+4:])
		s, err := unmarshalStats(payload)
		if err != nil {
			return err
		}
		e.Stats = s
	}
	return nil
}

// normalizeCreate maps the old kernels' session-created event (type 11) to the
// current one.
func normalizeCreate(t MessageType) MessageType {
	if t == CreateSession {
		return EventCreateSession
	}
	return t
}
