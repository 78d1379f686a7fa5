package target

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goiscsi/goiscsi/pdu"
)

// ParseSenseCode parses "KEY/ASC/ASCQ" in hex, e.g. "6/3f/0e".
func ParseSenseCode(s string) (SenseCode, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return SenseCode{}, fmt.Errorf("sense %q: want KEY/ASC/ASCQ in hex, e.g. 6/3f/0e", s)
	}
	var v [3]uint64
	for i, p := range parts {
		n, err := strconv.ParseUint(strings.TrimPrefix(p, "0x"), 16, 8)
		if err != nil || (i == 0 && n > 0xf) {
			return SenseCode{}, fmt.Errorf("sense %q: %q is not a hex byte (the key is one digit)", s, p)
		}
		v[i] = n
	}
	return SenseCode{Key: pdu.SenseKey(v[0]), ASC: uint8(v[1]), ASCQ: uint8(v[2])}, nil
}

// AddLUN adds a logical unit to a running target. With the target's
// LUNChangeUA on, every session gets REPORTED LUNS DATA HAS CHANGED on its
// other LUNs.
func (s *Server) AddLUN(target string, cfg LUNConfig) error {
	s.mu.Lock()
	t, err := s.target(target)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	if t.lus[cfg.Number] != nil {
		s.mu.Unlock()
		return fmt.Errorf("target %s already has LUN %d", target, cfg.Number)
	}
	s.mu.Unlock()
	lu, err := newLogicalUnit(target, cfg) // may create a large file: not under the lock
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.lus[cfg.Number] != nil {
		lu.close()
		return fmt.Errorf("target %s already has LUN %d", target, cfg.Number)
	}
	t.lus[cfg.Number] = lu
	ua := s.lunsChangedLocked(t, cfg.Number)
	s.log.Info("action: add LUN", "target", target, "lun", cfg.Number, "bytes", lu.size(), "file", cfg.File,
		"naa", lu.naaString(), "unit_attentions", ua)
	return nil
}

// RemoveLUN removes a logical unit; commands to it then fail with LOGICAL
// UNIT NOT SUPPORTED.
func (s *Server) RemoveLUN(target string, number uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.target(target)
	if err != nil {
		return err
	}
	lu := t.lus[number]
	if lu == nil {
		return fmt.Errorf("target %s has no LUN %d", target, number)
	}
	delete(t.lus, number)
	for _, ss := range t.sessions {
		delete(ss.ua, number)
	}
	ua := s.lunsChangedLocked(t, number)
	s.log.Info("action: remove LUN", "target", target, "lun", number, "unit_attentions", ua)
	return lu.close()
}

// lunsChangedLocked sets 3F/0E on every LUN but changed of every session, if
// the target does so, and returns how many it set.
func (s *Server) lunsChangedLocked(t *target, changed uint64) int {
	if !t.lunChangeUA {
		return 0
	}
	n := 0
	for _, ss := range t.sessions {
		for lun := range t.lus {
			if lun != changed {
				ss.addUA(lun, senseLUNsChanged)
				n++
			}
		}
	}
	return n
}

// SetLUNChangeUA turns the LIO-like 3F/0E Unit Attention on LUN changes on or
// off for a target.
func (s *Server) SetLUNChangeUA(target string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.target(target)
	if err != nil {
		return err
	}
	t.lunChangeUA = on
	s.log.Info("action: LUN change unit attention", "target", target, "on", on)
	return nil
}

// AsyncEvent is an Asynchronous Message to send (RFC 7143 §11.9).
type AsyncEvent struct {
	Target string `json:"target"`
	// TSIH picks one session; 0 sends on every session of the target.
	TSIH uint16 `json:"tsih,omitempty"`
	// Event is the AsyncEvent code: 0 SCSI event (Sense), 1 logout request
	// (Parameter3 = deadline in seconds; the target drops the connection when
	// it passes), 2 the target drops the connection (Parameter2 Time2Wait,
	// Parameter3 Time2Retain; Parameter1 becomes the CID), 3 the target drops
	// all connections, 4 renegotiation request; others are sent as given.
	Event uint8 `json:"event"`
	// LUN and Sense are the logical unit and sense data of event 0.
	LUN        uint64    `json:"lun,omitempty"`
	Sense      SenseCode `json:"sense"`
	Parameter1 uint16    `json:"parameter1,omitempty"`
	Parameter2 uint16    `json:"parameter2,omitempty"`
	Parameter3 uint16    `json:"parameter3,omitempty"`
}

// logoutGrace is how long past an AsyncEvent 1 deadline the target waits for
// the Logout before it drops the connection.
const logoutGrace = time.Second

// SendAsyncEvent sends an Asynchronous Message on the chosen sessions and
// returns on how many connections it went out.
func (s *Server) SendAsyncEvent(ev AsyncEvent) (int, error) {
	conns, err := s.sessionConns(ev.Target, ev.TSIH)
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, c := range conns {
		m := pdu.AsyncMessage{Event: pdu.AsyncEvent(ev.Event), Parameter1: ev.Parameter1, Parameter2: ev.Parameter2, Parameter3: ev.Parameter3}
		var data []byte
		switch m.Event {
		case pdu.AsyncSCSIEvent:
			m.LUN = pdu.NewLUN(ev.LUN)
			data = pdu.AppendSenseSegment(nil, pdu.AppendFixedSense(nil, ev.Sense.Key, ev.Sense.ASC, ev.Sense.ASCQ))
		case pdu.AsyncDropConnection:
			m.Parameter1 = c.cid
		}
		if c.send(&m, data, true) != nil {
			continue
		}
		sent++
		c.log.Info("action: async message", "event", ev.Event, "lun", ev.LUN, "sense", ev.Sense.String(),
			"p1", m.Parameter1, "p2", m.Parameter2, "p3", m.Parameter3)
		switch m.Event {
		case pdu.AsyncLogoutRequest:
			deadline := time.Duration(ev.Parameter3)*time.Second + logoutGrace
			c.wmu.Lock()
			if c.logoutTimer != nil {
				c.logoutTimer.Stop()
			}
			c.logoutTimer = time.AfterFunc(deadline, func() { c.close("no Logout before the AsyncEvent 1 deadline") })
			c.wmu.Unlock()
		case pdu.AsyncDropConnection, pdu.AsyncDropAllConnections:
			c.close(fmt.Sprintf("AsyncEvent %d announced the drop", ev.Event))
		}
	}
	return sent, nil
}

// sessionConns returns the connections of one session (tsih) or of every
// session (tsih 0) of a target.
func (s *Server) sessionConns(target string, tsih uint16) ([]*conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.target(target)
	if err != nil {
		return nil, err
	}
	var out []*conn
	for _, ss := range t.sessions {
		if tsih == 0 || ss.tsih == tsih {
			out = append(out, ss.conns...)
		}
	}
	if tsih != 0 && len(out) == 0 {
		return nil, fmt.Errorf("target %s has no session with TSIH %d", target, tsih)
	}
	return out, nil
}

// UnitAttention is a Unit Attention to queue.
type UnitAttention struct {
	Target string `json:"target"`
	// TSIH picks one session; 0 means every session of the target.
	TSIH uint16 `json:"tsih,omitempty"`
	// LUN gets the condition, or every LUN with AllLUNs.
	LUN     uint64    `json:"lun,omitempty"`
	AllLUNs bool      `json:"all_luns,omitempty"`
	Sense   SenseCode `json:"sense"`
}

// SetUnitAttention queues a Unit Attention that the next command to the LUN
// (other than INQUIRY, REPORT LUNS and REQUEST SENSE) reports. It returns how
// many session and LUN pairs got it.
func (s *Server) SetUnitAttention(ua UnitAttention) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.target(ua.Target)
	if err != nil {
		return 0, err
	}
	if !ua.AllLUNs && t.lus[ua.LUN] == nil {
		return 0, fmt.Errorf("target %s has no LUN %d", ua.Target, ua.LUN)
	}
	n := 0
	for _, ss := range t.sessions {
		if ua.TSIH != 0 && ss.tsih != ua.TSIH {
			continue
		}
		for lun := range t.lus {
			if ua.AllLUNs || lun == ua.LUN {
				ss.addUA(lun, ua.Sense)
				n++
			}
		}
	}
	s.log.Info("action: unit attention", "target", ua.Target, "tsih", ua.TSIH, "lun", ua.LUN, "all_luns", ua.AllLUNs,
		"sense", ua.Sense.String(), "queued", n)
	return n, nil
}

// DropConnections closes the connections of one session (tsih) or all
// sessions (0) of a target: now when afterBytes is 0, else once the target
// has sent that many more bytes on each (cutting a PDU in two when the count
// ends inside one). It returns how many connections it affected.
func (s *Server) DropConnections(target string, tsih uint16, afterBytes int64) (int, error) {
	conns, err := s.sessionConns(target, tsih)
	if err != nil {
		return 0, err
	}
	for _, c := range conns {
		if afterBytes <= 0 {
			c.close("dropped by control action")
		} else {
			c.nc.limit.Store(afterBytes)
		}
	}
	s.log.Info("action: drop connections", "target", target, "tsih", tsih, "after_bytes", afterBytes, "connections", len(conns))
	return len(conns), nil
}

// SetDelay makes the target wait d before each Login, Text and SCSI response.
func (s *Server) SetDelay(target string, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.target(target)
	if err != nil {
		return err
	}
	t.delay = d
	s.log.Info("action: delay responses", "target", target, "delay", d.String())
	return nil
}

// LoginRefusal makes the target answer logins with a status instead of
// letting them in.
type LoginRefusal struct {
	// Target is the target name; "" refuses Discovery sessions.
	Target string `json:"target"`
	// Class and Detail are the login status (§11.13.5): 1/1 and 1/2 redirect
	// (temporarily, permanently) to Address, 2/x initiator errors, 3/x target
	// errors (retry later). Class 0 clears the refusal.
	Class  uint8 `json:"class"`
	Detail uint8 `json:"detail"`
	// Address is the redirect's TargetAddress ("127.0.0.1:3261" or
	// "[::1]:3261,1"); required with class 1.
	Address string `json:"address,omitempty"`
	// Count is how many logins to refuse; 0 means 1 and -1 every one until
	// cleared.
	Count int `json:"count,omitempty"`
}

func (r *LoginRefusal) status() pdu.LoginStatus {
	return pdu.LoginStatus{Class: r.Class, Detail: r.Detail}
}

// RefuseLogins arms (or, with class 0, clears) a login refusal.
func (s *Server) RefuseLogins(r LoginRefusal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Target != "" {
		if _, err := s.target(r.Target); err != nil {
			return err
		}
	}
	switch {
	case r.Class == 0:
		delete(s.refusals, r.Target)
		s.log.Info("action: stop refusing logins", "target", r.Target)
		return nil
	case r.Class > 3:
		return fmt.Errorf("login status class %d does not exist (1 redirect, 2 initiator error, 3 target error)", r.Class)
	case r.Class == 1 && r.Address == "":
		return fmt.Errorf("a redirect needs an address")
	}
	if r.Count == 0 {
		r.Count = 1
	}
	s.refusals[r.Target] = &r
	s.log.Info("action: refuse logins", "target", r.Target, "status", r.status().String(), "address", r.Address, "count", r.Count)
	return nil
}

// SessionInfo describes a logged-in Normal session.
type SessionInfo struct {
	Target    string `json:"target"`
	TSIH      uint16 `json:"tsih"`
	ISID      string `json:"isid"`
	Initiator string `json:"initiator"`
	TPGT      int    `json:"tpgt"`
	// Connections are "local->remote" address pairs.
	Connections []string `json:"connections"`
	// PendingUA lists the queued Unit Attentions per LUN.
	PendingUA map[uint64][]string `json:"pending_ua,omitempty"`
}

// Sessions lists the logged-in sessions of a target, by TSIH.
func (s *Server) Sessions(target string) ([]SessionInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.target(target)
	if err != nil {
		return nil, err
	}
	var out []SessionInfo
	for _, ss := range t.sessions {
		si := SessionInfo{Target: target, TSIH: ss.tsih, ISID: ss.isid.String(), Initiator: ss.initiator, TPGT: ss.tpgt}
		for _, c := range ss.conns {
			si.Connections = append(si.Connections, c.local+"->"+c.nc.RemoteAddr().String())
		}
		for lun, q := range ss.ua {
			if si.PendingUA == nil {
				si.PendingUA = map[uint64][]string{}
			}
			for _, u := range q {
				si.PendingUA[lun] = append(si.PendingUA[lun], u.String())
			}
		}
		out = append(out, si)
	}
	slices.SortFunc(out, func(a, b SessionInfo) int { return int(a.TSIH) - int(b.TSIH) })
	return out, nil
}

// WaitSessions waits until a target has at least n sessions in the full
// feature phase and returns them. An initiator's login returns a moment before
// the target counts its session, so scenarios wait here before they act on it.
func (s *Server) WaitSessions(ctx context.Context, target string, n int) ([]SessionInfo, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		all, err := s.Sessions(target)
		if err != nil {
			return nil, err
		}
		var ready []SessionInfo
		for _, si := range all {
			if len(si.Connections) > 0 {
				ready = append(ready, si)
			}
		}
		if len(ready) >= n {
			return ready, nil
		}
		select {
		case <-ctx.Done():
			return ready, fmt.Errorf("target %s has %d sessions, waiting for %d: %w", target, len(ready), n, ctx.Err())
		case <-tick.C:
		}
	}
}

// LUNs lists the LUN numbers of a target.
func (s *Server) LUNs(target string) ([]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.target(target)
	if err != nil {
		return nil, err
	}
	return t.lunNumbers(), nil
}

// ControlRequest is one request on the control socket: a JSON object per
// line, answered by one ControlResponse line.
type ControlRequest struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// ControlResponse answers a ControlRequest.
type ControlResponse struct {
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Arguments of the control operations that are not API structs already.
type (
	// TargetArgs names a target.
	TargetArgs struct {
		Target string `json:"target"`
	}
	// AddLUNArgs are the arguments of "add-lun".
	AddLUNArgs struct {
		Target string    `json:"target"`
		LUN    LUNConfig `json:"lun"`
	}
	// RemoveLUNArgs are the arguments of "remove-lun".
	RemoveLUNArgs struct {
		Target string `json:"target"`
		Number uint64 `json:"number"`
	}
	// SwitchArgs are the arguments of "lun-change-ua".
	SwitchArgs struct {
		Target string `json:"target"`
		On     bool   `json:"on"`
	}
	// DropArgs are the arguments of "drop".
	DropArgs struct {
		Target     string `json:"target"`
		TSIH       uint16 `json:"tsih,omitempty"`
		AfterBytes int64  `json:"after_bytes,omitempty"`
	}
	// DelayArgs are the arguments of "delay".
	DelayArgs struct {
		Target string   `json:"target"`
		Delay  Duration `json:"delay"`
	}
	// WaitArgs are the arguments of "wait-sessions".
	WaitArgs struct {
		Target  string   `json:"target"`
		Count   int      `json:"count"`
		Timeout Duration `json:"timeout"`
	}
	// FaultArgs are the arguments of "fault".
	FaultArgs struct {
		Target string `json:"target"`
		Name   string `json:"name"`
		Count  int    `json:"count,omitempty"`
	}
)

// controlOps maps each control operation to the API call it makes.
var controlOps = map[string]func(s *Server, args json.RawMessage) (any, error){
	"add-lun": func(s *Server, raw json.RawMessage) (any, error) {
		var a AddLUNArgs
		return decodeThen(raw, &a, func() (any, error) { return nil, s.AddLUN(a.Target, a.LUN) })
	},
	"remove-lun": func(s *Server, raw json.RawMessage) (any, error) {
		var a RemoveLUNArgs
		return decodeThen(raw, &a, func() (any, error) { return nil, s.RemoveLUN(a.Target, a.Number) })
	},
	"lun-change-ua": func(s *Server, raw json.RawMessage) (any, error) {
		var a SwitchArgs
		return decodeThen(raw, &a, func() (any, error) { return nil, s.SetLUNChangeUA(a.Target, a.On) })
	},
	"async": func(s *Server, raw json.RawMessage) (any, error) {
		var a AsyncEvent
		return decodeThen(raw, &a, func() (any, error) { return s.SendAsyncEvent(a) })
	},
	"unit-attention": func(s *Server, raw json.RawMessage) (any, error) {
		var a UnitAttention
		return decodeThen(raw, &a, func() (any, error) { return s.SetUnitAttention(a) })
	},
	"drop": func(s *Server, raw json.RawMessage) (any, error) {
		var a DropArgs
		return decodeThen(raw, &a, func() (any, error) { return s.DropConnections(a.Target, a.TSIH, a.AfterBytes) })
	},
	"delay": func(s *Server, raw json.RawMessage) (any, error) {
		var a DelayArgs
		return decodeThen(raw, &a, func() (any, error) { return nil, s.SetDelay(a.Target, time.Duration(a.Delay)) })
	},
	"fault": func(s *Server, raw json.RawMessage) (any, error) {
		var a FaultArgs
		return decodeThen(raw, &a, func() (any, error) { return nil, s.InjectFault(a.Target, a.Name, a.Count) })
	},
	"clear-faults": func(s *Server, raw json.RawMessage) (any, error) {
		var a TargetArgs
		return decodeThen(raw, &a, func() (any, error) { s.ClearFaults(a.Target); return nil, nil })
	},
	"refuse-login": func(s *Server, raw json.RawMessage) (any, error) {
		var a LoginRefusal
		return decodeThen(raw, &a, func() (any, error) { return nil, s.RefuseLogins(a) })
	},
	"sessions": func(s *Server, raw json.RawMessage) (any, error) {
		var a TargetArgs
		return decodeThen(raw, &a, func() (any, error) { return s.Sessions(a.Target) })
	},
	"wait-sessions": func(s *Server, raw json.RawMessage) (any, error) {
		var a WaitArgs
		return decodeThen(raw, &a, func() (any, error) {
			ctx, cancel := context.WithTimeout(s.ctx, time.Duration(a.Timeout))
			defer cancel()
			return s.WaitSessions(ctx, a.Target, a.Count)
		})
	},
	"luns": func(s *Server, raw json.RawMessage) (any, error) {
		var a TargetArgs
		return decodeThen(raw, &a, func() (any, error) { return s.LUNs(a.Target) })
	},
}

func decodeThen(raw json.RawMessage, into any, f func() (any, error)) (any, error) {
	if len(raw) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(into); err != nil {
			return nil, fmt.Errorf("arguments: %w", err)
		}
	}
	return f()
}

// controlIdle bounds how long a control client may keep a connection quiet.
const controlIdle = time.Minute

// ServeControl listens on a unix socket (mode 0600, replacing a stale one)
// for control requests until Close.
func (s *Server) ServeControl(path string) error {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control socket: %w", err)
	}
	s.mu.Lock()
	if s.closed || s.control != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("control socket: server closed or already serving one")
	}
	s.control = ln
	s.wg.Add(1)
	s.mu.Unlock()
	s.log.Info("control socket listening", "path", path)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serveControlConn(c)
			}()
		}
	}()
	return nil
}

// maxControlRequest bounds one control request line.
const maxControlRequest = 1 << 20

func (s *Server) serveControlConn(c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(s.ctx, func() { c.Close() })
	defer stop()
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 4096), maxControlRequest)
	enc := json.NewEncoder(c)
	for {
		c.SetDeadline(time.Now().Add(controlIdle))
		if !sc.Scan() {
			return
		}
		var req ControlRequest
		var resp ControlResponse
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Error = "malformed request: " + err.Error()
		} else if op := controlOps[req.Op]; req.Op == "faults" {
			resp.Result, _ = json.Marshal(Faults())
		} else if op == nil {
			resp.Error = fmt.Sprintf("unknown operation %q", req.Op)
		} else if res, err := op(s, req.Args); err != nil {
			resp.Error = err.Error()
		} else if res != nil {
			resp.Result, _ = json.Marshal(res)
		}
		if resp.Error != "" {
			s.log.Warn("control request failed", "op", req.Op, "err", resp.Error)
		}
		if enc.Encode(resp) != nil {
			return
		}
	}
}

// Control sends one request to a control socket and decodes the result into
// result (which may be nil).
func Control(ctx context.Context, socket, op string, args, result any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	req := ControlRequest{Op: op}
	if args != nil {
		if req.Args, err = json.Marshal(args); err != nil {
			return err
		}
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return err
	}
	var resp ControlResponse
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("control %s: %w", op, err)
	}
	if resp.Error != "" {
		return fmt.Errorf("control %s: %s", op, resp.Error)
	}
	if result != nil && len(resp.Result) > 0 {
		return json.Unmarshal(resp.Result, result)
	}
	return nil
}
