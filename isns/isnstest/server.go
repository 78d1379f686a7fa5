// Package isnstest is an in-memory iSNS server for tests: it speaks iSNSP
// over TCP on loopback, keeps entities, portals, iSCSI nodes and portal
// groups the way open-isns's isnsd does (a default portal group with tag 1
// between every node and portal of an entity, a Successful answer without
// attributes when a query matches nothing), and delivers State Change Notifications by connecting
// to the registered SCN port, over TCP or UDP as the port's flag says.
//
// It is meant to be driven by a test: AddTarget and RemoveTarget change the
// database as a target array registering would, and return once every SCN
// they cause has been acknowledged (or has failed), so tests need no sleeps.
package isnstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/goiscsi/goiscsi/isns"
)

// Server is a fake iSNS server.
type Server struct {
	// SourceMustBeRegistered makes queries from a source that is not a
	// registered node fail with Source Unknown, as some servers do (isnsd
	// lets unknown sources query). Set before the first request.
	SourceMustBeRegistered bool
	// RegistrationPeriod is returned for new entities (seconds); 0 means
	// 900.
	RegistrationPeriod uint32
	// Intercept, if set, sees every request first; a non-nil return is
	// sent instead of the normal response (its XID is fixed up).
	Intercept func(req *isns.Message) *isns.Message

	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	ents []*entity
	scn  map[string]isns.SCNBitmap // node name -> registered bitmap
	log  []*isns.Message
	eid  int
	xid  uint16
	conn map[net.Conn]struct{}
	done bool
}

type entity struct {
	eid     string
	period  uint32
	portals []portal
	nodes   []node
}

type portal struct {
	ip          netip.Addr
	port        uint32
	scnPort     uint32 // 0: none
	esiPort     uint32
	esiInterval uint32
}

type node struct {
	name  string
	typ   uint32
	alias string
}

// NewServer starts a server on 127.0.0.1 and a free port.
func NewServer() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, scn: map[string]isns.SCNBitmap{}, conn: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and waits for its goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	s.done = true
	for c := range s.conn {
		c.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

// Requests returns the requests received so far, in order.
func (s *Server) Requests() []*isns.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// Registered reports whether a node of that name is registered.
func (s *Server) Registered(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, n := s.findNode(name)
	return n != nil
}

// SCNBitmap returns the bitmap node name registered for SCNs (0: none).
func (s *Server) SCNBitmap(name string) isns.SCNBitmap {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scn[name]
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.done {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conn[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serve(c)
	}
}

func (s *Server) serve(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conn, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := isns.NewReader(c)
	for {
		req, err := r.ReadMessage()
		if err != nil {
			return
		}
		if req.Function.IsResponse() {
			continue
		}
		var rsp *isns.Message
		if s.Intercept != nil {
			rsp = s.Intercept(req)
		}
		var notes []pendingSCN
		if rsp == nil {
			rsp, notes = s.handle(req)
		}
		rsp.XID = req.XID
		b, err := rsp.Encode(0)
		if err != nil {
			return
		}
		if _, err := c.Write(b); err != nil {
			return
		}
		s.deliver(notes)
	}
}

// pendingSCN is one notification to send after the response.
type pendingSCN struct {
	to      string
	network string
	addr    string
	change  isns.Change
}

func status(f isns.Function, st isns.Status) *isns.Message {
	return &isns.Message{Function: f.Response(), Flags: isns.FlagServer, Status: st}
}

func (s *Server) handle(req *isns.Message) (*isns.Message, []pendingSCN) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, req)
	source, _ := req.Source.AsString()
	if req.Source.Tag != isns.TagISCSIName || source == "" {
		return status(req.Function, isns.StatusSourceUnknown), nil
	}
	switch req.Function {
	case isns.DevAttrReg:
		return s.register(req)
	case isns.DevAttrQry:
		if _, n := s.findNode(source); n == nil && s.SourceMustBeRegistered {
			return status(req.Function, isns.StatusSourceUnknown), nil
		}
		return s.query(req)
	case isns.DevDereg:
		return s.deregister(req)
	case isns.SCNReg:
		return s.scnRegister(req, source)
	case isns.SCNDereg:
		name := req.Key.String(isns.TagISCSIName)
		delete(s.scn, name)
		return status(req.Function, isns.StatusSuccess), nil
	}
	return status(req.Function, isns.StatusMessageNotSupported), nil
}

func (s *Server) findEntity(eid string) *entity {
	for _, e := range s.ents {
		if e.eid == eid {
			return e
		}
	}
	return nil
}

func (s *Server) findNode(name string) (*entity, *node) {
	for _, e := range s.ents {
		for i := range e.nodes {
			if e.nodes[i].name == name {
				return e, &e.nodes[i]
			}
		}
	}
	return nil, nil
}

func (s *Server) register(req *isns.Message) (*isns.Message, []pendingSCN) {
	eid := req.Key.String(isns.TagEntityIdentifier)
	objs := isns.ParseObjects(req.Operating)
	if eid == "" {
		for _, o := range objs {
			if o.Type == isns.ObjectEntity {
				eid = o.Attrs.String(isns.TagEntityIdentifier)
			}
		}
	}
	var notes []pendingSCN
	e := s.findEntity(eid)
	if e != nil && req.Flags&isns.FlagReplace != 0 {
		notes = append(notes, s.removeEntity(e)...)
		e = nil
	}
	if e == nil {
		if eid == "" {
			s.eid++
			eid = fmt.Sprintf("isns.entity.%04d", s.eid)
		}
		period := s.RegistrationPeriod
		if period == 0 {
			period = 900
		}
		e = &entity{eid: eid, period: period}
		s.ents = append(s.ents, e)
	}
	var added []node
	for _, o := range objs {
		switch o.Type {
		case isns.ObjectPortal:
			ipa, _ := o.Attrs.Get(isns.TagPortalIPAddress)
			ip, err := ipa.AsIP()
			port, ok := o.Attrs.Uint32(isns.TagPortalPort)
			if err != nil || !ok {
				return status(req.Function, isns.StatusInvalidRegistration), nil
			}
			p := portal{ip: ip, port: port}
			p.scnPort, _ = o.Attrs.Uint32(isns.TagSCNPort)
			p.esiPort, _ = o.Attrs.Uint32(isns.TagESIPort)
			p.esiInterval, _ = o.Attrs.Uint32(isns.TagESIInterval)
			e.portals = append(e.portals, p)
		case isns.ObjectNode:
			n := node{name: o.Attrs.String(isns.TagISCSIName), alias: o.Attrs.String(isns.TagISCSIAlias)}
			n.typ, _ = o.Attrs.Uint32(isns.TagISCSINodeType)
			if n.name == "" {
				return status(req.Function, isns.StatusInvalidRegistration), nil
			}
			if _, old := s.findNode(n.name); old != nil {
				*old = n
			} else {
				e.nodes = append(e.nodes, n)
			}
			added = append(added, n)
		}
	}
	for _, n := range added {
		notes = append(notes, s.notify(n, isns.SCNObjectUpdated|isns.SCNObjectAdded)...)
	}
	rsp := status(req.Function, isns.StatusSuccess)
	rsp.Key = isns.Attrs{isns.StringAttr(isns.TagEntityIdentifier, e.eid)}
	rsp.Operating = append(rsp.Operating, entityAttrs(e)...)
	rsp.Operating = append(rsp.Operating, isns.Uint32Attr(isns.TagRegistrationPeriod, e.period))
	for _, p := range e.portals {
		rsp.Operating = append(rsp.Operating, portalAttrs(p)...)
		if p.esiPort != 0 {
			rsp.Operating = append(rsp.Operating, isns.Uint32Attr(isns.TagESIInterval, p.esiInterval), isns.Uint32Attr(isns.TagESIPort, p.esiPort))
		}
	}
	for _, n := range e.nodes {
		rsp.Operating = append(rsp.Operating, nodeAttrs(n)...)
	}
	return rsp, notes
}

func entityAttrs(e *entity) isns.Attrs {
	return isns.Attrs{isns.StringAttr(isns.TagEntityIdentifier, e.eid), isns.Uint32Attr(isns.TagEntityProtocol, isns.EntityProtocolISCSI)}
}

func portalAttrs(p portal) isns.Attrs {
	return isns.Attrs{isns.IPAttr(isns.TagPortalIPAddress, p.ip), isns.Uint32Attr(isns.TagPortalPort, p.port)}
}

func nodeAttrs(n node) isns.Attrs {
	as := isns.Attrs{isns.StringAttr(isns.TagISCSIName, n.name), isns.Uint32Attr(isns.TagISCSINodeType, n.typ)}
	if n.alias != "" {
		as = append(as, isns.StringAttr(isns.TagISCSIAlias, n.alias))
	}
	return as
}

func pgAttrs(n node, p portal) isns.Attrs {
	return isns.Attrs{isns.StringAttr(isns.TagPGISCSIName, n.name), isns.IPAttr(isns.TagPGPortalIPAddr, p.ip),
		isns.Uint32Attr(isns.TagPGPortalPort, p.port), isns.Uint32Attr(isns.TagPGTag, 1)}
}

// query answers the three query shapes an initiator sends: key iSCSI Node
// Type (all nodes of those types), key iSCSI Name (that node), key Entity
// Identifier (the entity itself).
func (s *Server) query(req *isns.Message) (*isns.Message, []pendingSCN) {
	rsp := status(req.Function, isns.StatusSuccess)
	rsp.Key = req.Key
	add := func(e *entity, n node) {
		rsp.Operating = append(rsp.Operating, entityAttrs(e)...)
		rsp.Operating = append(rsp.Operating, nodeAttrs(n)...)
		for _, p := range e.portals {
			rsp.Operating = append(rsp.Operating, portalAttrs(p)...)
		}
		for _, p := range e.portals {
			rsp.Operating = append(rsp.Operating, pgAttrs(n, p)...)
		}
	}
	if len(req.Key) != 1 {
		return status(req.Function, isns.StatusInvalidQuery), nil
	}
	k := req.Key[0]
	switch k.Tag {
	case isns.TagISCSINodeType:
		want, err := k.AsUint32()
		if err != nil {
			return status(req.Function, isns.StatusInvalidQuery), nil
		}
		for _, e := range s.ents {
			for _, n := range e.nodes {
				if n.typ&want != 0 {
					add(e, n)
				}
			}
		}
	case isns.TagISCSIName:
		name, _ := k.AsString()
		if e, n := s.findNode(name); n != nil {
			add(e, *n)
		}
	case isns.TagEntityIdentifier:
		eid, _ := k.AsString()
		if e := s.findEntity(eid); e != nil {
			rsp.Operating = append(rsp.Operating, entityAttrs(e)...)
		}
	default:
		return status(req.Function, isns.StatusAttributeNotImplemented), nil
	}
	// isnsd (open-isns 0.101, measured) answers a query that matches
	// nothing, or only deregistered nodes, with status Successful and no
	// operating attributes, not No Such Entry.
	return rsp, nil
}

func (s *Server) deregister(req *isns.Message) (*isns.Message, []pendingSCN) {
	var notes []pendingSCN
	for _, o := range isns.ParseObjects(req.Operating) {
		switch o.Type {
		case isns.ObjectEntity:
			if e := s.findEntity(o.Attrs.String(isns.TagEntityIdentifier)); e != nil {
				notes = append(notes, s.removeEntity(e)...)
			}
		case isns.ObjectNode:
			notes = append(notes, s.removeNode(o.Attrs.String(isns.TagISCSIName))...)
		}
	}
	return status(req.Function, isns.StatusSuccess), notes
}

func (s *Server) removeEntity(e *entity) []pendingSCN {
	var notes []pendingSCN
	for _, n := range slices.Clone(e.nodes) {
		notes = append(notes, s.removeNode(n.name)...)
	}
	s.ents = slices.DeleteFunc(s.ents, func(x *entity) bool { return x == e })
	return notes
}

func (s *Server) removeNode(name string) []pendingSCN {
	e, n := s.findNode(name)
	if n == nil {
		return nil
	}
	gone := *n
	e.nodes = slices.DeleteFunc(e.nodes, func(x node) bool { return x.name == name })
	delete(s.scn, name)
	return s.notify(gone, isns.SCNObjectRemoved)
}

func (s *Server) scnRegister(req *isns.Message, source string) (*isns.Message, []pendingSCN) {
	name := req.Key.String(isns.TagISCSIName)
	bm, ok := req.Operating.Uint32(isns.TagISCSISCNBitmap)
	if name == "" || !ok {
		return status(req.Function, isns.StatusSCNRegistrationRejected), nil
	}
	e, n := s.findNode(name)
	if n == nil {
		return status(req.Function, isns.StatusSourceUnknown), nil
	}
	if !slices.ContainsFunc(e.portals, func(p portal) bool { return p.scnPort != 0 }) {
		return status(req.Function, isns.StatusSCNRegistrationRejected), nil
	}
	s.scn[name] = isns.SCNBitmap(bm)
	return status(req.Function, isns.StatusSuccess), nil
}

// notify lists the SCNs a change to node n causes, as isnsd filters them:
// the event bits the recipient registered, and with target-and-self-only
// only changes to targets or to itself.
func (s *Server) notify(n node, bits isns.SCNBitmap) []pendingSCN {
	var out []pendingSCN
	for to, bm := range s.scn {
		got := bits & bm & (isns.SCNDDMemberAdded | isns.SCNDDMemberRemoved | isns.SCNObjectUpdated | isns.SCNObjectAdded | isns.SCNObjectRemoved)
		if got == 0 {
			continue
		}
		if bm&isns.SCNTargetAndSelfOnly != 0 && to != n.name && n.typ&isns.NodeTarget == 0 {
			continue
		}
		if bm&isns.SCNInitiatorAndSelfOnly != 0 && to != n.name && n.typ&isns.NodeInitiator == 0 {
			continue
		}
		e, _ := s.findNode(to)
		if e == nil {
			continue
		}
		for _, p := range e.portals {
			if p.scnPort == 0 {
				continue
			}
			network := "tcp"
			if p.scnPort&(1<<16) != 0 {
				network = "udp"
			}
			addr := net.JoinHostPort(p.ip.String(), strconv.Itoa(int(uint16(p.scnPort))))
			out = append(out, pendingSCN{to: to, network: network, addr: addr, change: isns.Change{Bitmap: got, Name: n.name}})
		}
	}
	slices.SortFunc(out, func(a, b pendingSCN) int {
		if a.to < b.to {
			return -1
		}
		if a.to > b.to {
			return 1
		}
		return 0
	})
	return out
}

// deliver sends each SCN on a fresh connection and waits for its SCNRsp.
func (s *Server) deliver(notes []pendingSCN) error {
	var errs []error
	for _, p := range notes {
		s.mu.Lock()
		s.xid++
		xid := s.xid
		s.mu.Unlock()
		m := isns.NewSCN(xid, &isns.Notification{Destination: p.to, Timestamp: time.Now(), Changes: []isns.Change{p.change}})
		if _, err := Exchange(context.Background(), p.network, p.addr, m); err != nil {
			errs = append(errs, fmt.Errorf("SCN to %s at %s/%s: %w", p.to, p.addr, p.network, err))
		}
	}
	return errors.Join(errs...)
}

// Exchange connects to addr over network ("tcp" or "udp"), sends m and
// returns the response with m's XID, as a server sending an SCN or ESI does.
// It gives up after 5 s or when ctx is done.
func Exchange(ctx context.Context, network, addr string, m *isns.Message) (*isns.Message, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	b, err := m.Encode(0)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write(b); err != nil {
		return nil, err
	}
	if network == "udp" {
		buf := make([]byte, isns.HeaderLen+isns.MaxPDUPayload)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return nil, err
			}
			rsp, err := isns.DecodeDatagram(buf[:n])
			if err == nil && rsp.XID == m.XID {
				return rsp, nil
			}
		}
	}
	r := isns.NewReader(c)
	for {
		rsp, err := r.ReadMessage()
		if err != nil {
			return nil, err
		}
		if rsp.XID == m.XID && rsp.Function == m.Function.Response() {
			return rsp, nil
		}
	}
}

// AddTarget registers a target the way an array (or isnsadm --register
// target=NAME portal=ADDR:PORT) does: a new entity with the portals and the
// node, a default portal group tag of 1 for each portal. It returns once the
// SCNs it causes were delivered; the error lists those that failed.
func (s *Server) AddTarget(name, alias string, portals ...netip.AddrPort) error {
	s.mu.Lock()
	s.eid++
	e := &entity{eid: fmt.Sprintf("isns.entity.%04d", s.eid), period: 900}
	for _, p := range portals {
		e.portals = append(e.portals, portal{ip: p.Addr(), port: uint32(p.Port())})
	}
	n := node{name: name, typ: isns.NodeTarget, alias: alias}
	e.nodes = []node{n}
	s.ents = append(s.ents, e)
	notes := s.notify(n, isns.SCNObjectUpdated|isns.SCNObjectAdded)
	s.mu.Unlock()
	return s.deliver(notes)
}

// RemoveTarget deregisters a target's node; SCNs as for AddTarget.
func (s *Server) RemoveTarget(name string) error {
	s.mu.Lock()
	notes := s.removeNode(name)
	s.mu.Unlock()
	return s.deliver(notes)
}

// SendESI sends an Entity Status Inquiry to every ESI port the entity
// registered, as isnsd does, and returns the responses.
func (s *Server) SendESI(ctx context.Context, eid string) ([]*isns.Message, error) {
	s.mu.Lock()
	e := s.findEntity(eid)
	if e == nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("no entity %q", eid)
	}
	type dest struct {
		network, addr string
		m             *isns.Message
	}
	var ds []dest
	for _, p := range e.portals {
		if p.esiPort == 0 {
			continue
		}
		s.xid++
		network := "tcp"
		if p.esiPort&(1<<16) != 0 {
			network = "udp"
		}
		m := &isns.Message{Function: isns.ESI, Flags: isns.FlagServer, XID: s.xid, Key: isns.Attrs{
			isns.Uint64Attr(isns.TagTimestamp, uint64(time.Now().Unix())),
			isns.StringAttr(isns.TagEntityIdentifier, e.eid),
			isns.IPAttr(isns.TagPortalIPAddress, p.ip), isns.Uint32Attr(isns.TagPortalPort, p.port)}}
		ds = append(ds, dest{network, net.JoinHostPort(p.ip.String(), strconv.Itoa(int(uint16(p.esiPort)))), m})
	}
	s.mu.Unlock()
	var out []*isns.Message
	for _, d := range ds {
		rsp, err := Exchange(ctx, d.network, d.addr, d.m)
		if err != nil {
			return out, err
		}
		out = append(out, rsp)
	}
	return out, nil
}
