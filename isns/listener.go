package isns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// ListenOption configures an SCNListener.
type ListenOption func(*listenConfig)

type listenConfig struct {
	buffer      int
	maxConns    int
	idleTimeout time.Duration
	maxMessage  int
	timeout     time.Duration
}

// WithEventBuffer sets the capacity of the Events channel (default 64).
// When it is full, the connection the next event came on stops being read
// until there is room (the server then retries or times out) — events are
// never dropped.
func WithEventBuffer(n int) ListenOption {
	return func(c *listenConfig) {
		if n >= 0 {
			c.buffer = n
		}
	}
}

// WithMaxConns bounds the TCP connections served at once (default 16);
// further ones are closed at once.
func WithMaxConns(n int) ListenOption {
	return func(c *listenConfig) {
		if n > 0 {
			c.maxConns = n
		}
	}
}

// WithIdleTimeout closes a TCP connection that sends nothing for d (default
// 10 minutes; isnsd keeps its SCN connection open between notifications and
// drops idle sockets itself after 5 minutes).
func WithIdleTimeout(d time.Duration) ListenOption {
	return func(c *listenConfig) {
		if d > 0 {
			c.idleTimeout = d
		}
	}
}

// SCNListener is the port an iSNS server connects to (TCP) or sends to
// (UDP) to deliver State Change Notifications and Entity Status Inquiries.
// It answers each SCN with an SCNRsp and each ESI with an ESIRsp before
// handing the events to the Events channel.
//
// Anyone who can reach the port can send it SCNs: treat events as hints to
// query the server again, never as facts.
type SCNListener struct {
	cfg    listenConfig
	ln     net.Listener   // TCP
	pc     net.PacketConn // UDP
	events chan Event
	done   chan struct{}
	stop   func() bool

	once      sync.Once
	closeEvts sync.Once
	wg        sync.WaitGroup
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
}

// ListenSCN listens on network ("tcp", "tcp4", "tcp6", "udp", "udp4",
// "udp6") and address (e.g. ":0" for any free port). The listener shuts down
// when ctx is done or Close is called, whichever comes first.
func ListenSCN(ctx context.Context, network, address string, opts ...ListenOption) (*SCNListener, error) {
	cfg := listenConfig{buffer: 64, maxConns: 16, idleTimeout: 10 * time.Minute, maxMessage: 64 << 10, timeout: DefaultTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	l := &SCNListener{cfg: cfg, events: make(chan Event, cfg.buffer), done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	var lc net.ListenConfig
	switch network {
	case "tcp", "tcp4", "tcp6":
		ln, err := lc.Listen(ctx, network, address)
		if err != nil {
			return nil, fmt.Errorf("isns: SCN listener: %w", err)
		}
		l.ln = ln
		l.wg.Add(1)
		go l.accept()
	case "udp", "udp4", "udp6":
		pc, err := lc.ListenPacket(ctx, network, address)
		if err != nil {
			return nil, fmt.Errorf("isns: SCN listener: %w", err)
		}
		l.pc = pc
		l.wg.Add(1)
		go l.serveUDP()
	default:
		return nil, fmt.Errorf("isns: SCN listener: network %q, want tcp or udp", network)
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	l.mu.Lock()
	l.stop = stop
	l.mu.Unlock()
	return l, nil
}

// Events delivers what the server reported. It is closed once the listener
// has shut down and every handler has finished.
func (l *SCNListener) Events() <-chan Event { return l.events }

// Addr returns the local address.
func (l *SCNListener) Addr() net.Addr {
	if l.ln != nil {
		return l.ln.Addr()
	}
	return l.pc.LocalAddr()
}

// Port returns the local port, the one to register as SCN Port.
func (l *SCNListener) Port() uint16 {
	switch a := l.Addr().(type) {
	case *net.TCPAddr:
		return uint16(a.Port)
	case *net.UDPAddr:
		return uint16(a.Port)
	}
	return 0
}

// UDP reports whether the listener is a UDP one (its port is registered
// with the UDP flag).
func (l *SCNListener) UDP() bool { return l.pc != nil }

// Close stops listening, closes the connections, waits for every handler to
// return and closes the Events channel.
func (l *SCNListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		if l.ln != nil {
			err = l.ln.Close()
		} else {
			err = l.pc.Close()
		}
		l.mu.Lock()
		for c := range l.conns {
			c.Close()
		}
		stop := l.stop
		l.mu.Unlock()
		if stop != nil {
			stop()
		}
	})
	l.wg.Wait()
	l.closeEvts.Do(func() { close(l.events) })
	return err
}

func (l *SCNListener) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-l.done:
				return
			case <-time.After(50 * time.Millisecond): // e.g. EMFILE: back off
			}
			continue
		}
		l.mu.Lock()
		select {
		case <-l.done:
			l.mu.Unlock()
			c.Close()
			return
		default:
		}
		if len(l.conns) >= l.cfg.maxConns {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go l.serveConn(c)
	}
}

func (l *SCNListener) serveConn(c net.Conn) {
	defer l.wg.Done()
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		c.Close()
	}()
	r := NewReader(c)
	r.MaxMessage = l.cfg.maxMessage
	from := c.RemoteAddr().String()
	for {
		c.SetReadDeadline(time.Now().Add(l.cfg.idleTimeout))
		m, err := r.ReadMessage()
		if err != nil {
			return
		}
		rsp, evs := l.handle(m, from)
		if rsp != nil {
			b, err := rsp.Encode(0)
			if err != nil {
				return
			}
			c.SetWriteDeadline(time.Now().Add(l.cfg.timeout))
			if _, err := c.Write(b); err != nil {
				return
			}
		}
		if !l.deliver(evs) {
			return
		}
	}
}

func (l *SCNListener) serveUDP() {
	defer l.wg.Done()
	buf := make([]byte, HeaderLen+MaxPDUPayload+4)
	for {
		n, addr, err := l.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-l.done:
				return
			default:
			}
			continue
		}
		m, err := DecodeDatagram(buf[:n])
		if err != nil {
			continue // nothing to answer to: the datagram is not a message
		}
		rsp, evs := l.handle(m, addr.String())
		if rsp != nil {
			if b, err := rsp.Encode(0); err == nil {
				l.pc.SetWriteDeadline(time.Now().Add(l.cfg.timeout))
				l.pc.WriteTo(b, addr)
			}
		}
		if !l.deliver(evs) {
			return
		}
	}
}

// handle builds the response to a message and the events it reports.
func (l *SCNListener) handle(m *Message, from string) (*Message, []Event) {
	if m.Function.IsResponse() {
		return nil, nil
	}
	switch m.Function {
	case SCN:
		n, err := ParseSCN(m)
		if err != nil {
			return &Message{Function: SCN.Response(), Flags: FlagClient, XID: m.XID, Status: StatusSCNEventRejected}, nil
		}
		return SCNResponse(m), n.Events(from)
	case ESI:
		return ESIResponse(m), []Event{{Kind: EventESI, Time: time.Now(), From: from}}
	}
	return &Message{Function: m.Function.Response(), Flags: FlagClient, XID: m.XID, Status: StatusMessageNotSupported}, nil
}

// deliver sends events to the channel; false if the listener closed first.
func (l *SCNListener) deliver(evs []Event) bool {
	for _, ev := range evs {
		select {
		case l.events <- ev:
		case <-l.done:
			return false
		}
	}
	return true
}
