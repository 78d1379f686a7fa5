package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/pdu"
)

// Portal is a target portal: an address (IP or host name), a TCP port and the
// target portal group tag (-1 when unknown).
type Portal struct {
	Address string
	Port    int
	TPGT    int
}

// DefaultPort is the iSCSI port.
const DefaultPort = 3260

// String formats p as open-iscsi does: "10.0.0.1:3260,1", "[fe80::1]:3260,1".
func (p Portal) String() string {
	return net.JoinHostPort(p.Address, strconv.Itoa(p.Port)) + "," + strconv.Itoa(p.TPGT)
}

// HostPort returns "address:port", bracketing IPv6 addresses.
func (p Portal) HostPort() string { return net.JoinHostPort(p.Address, strconv.Itoa(p.Port)) }

// ParseTargetAddress parses a TargetAddress value (RFC 7143 §13.8):
// domainname[:port][,portal-group-tag], where domainname is a host name, an IPv4
// address or a bracketed IPv6 address. Missing parts get port 3260 and TPGT -1.
func ParseTargetAddress(s string) (Portal, error) {
	p := Portal{Port: DefaultPort, TPGT: -1}
	rest := s
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return Portal{}, fmt.Errorf("target address %q: unclosed '['", s)
		}
		p.Address, rest = rest[1:end], rest[end+1:]
		if net.ParseIP(p.Address) == nil {
			return Portal{}, fmt.Errorf("target address %q: %q is not an IPv6 address", s, p.Address)
		}
	} else {
		end := strings.IndexAny(rest, ":,")
		if end < 0 {
			end = len(rest)
		}
		p.Address, rest = rest[:end], rest[end:]
	}
	if p.Address == "" {
		return Portal{}, fmt.Errorf("target address %q: no host", s)
	}
	if tag, ok := strings.CutPrefix(rest, ":"); ok {
		port, after, _ := strings.Cut(tag, ",")
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return Portal{}, fmt.Errorf("target address %q: bad port %q", s, port)
		}
		p.Port = n
		rest = ""
		if after != "" || strings.Contains(tag, ",") {
			rest = "," + after
		}
	}
	if tag, ok := strings.CutPrefix(rest, ","); ok {
		n, err := strconv.Atoi(tag)
		if err != nil || n < 0 || n > 65535 {
			return Portal{}, fmt.Errorf("target address %q: bad portal group tag %q", s, tag)
		}
		p.TPGT = n
	} else if rest != "" {
		return Portal{}, fmt.Errorf("target address %q: unexpected %q", s, rest)
	}
	return p, nil
}

// DiscoveredTarget is one record of a SendTargets response.
type DiscoveredTarget struct {
	Name    string
	Portals []Portal
}

// ParseSendTargets turns the pairs of a SendTargets response into targets. A
// target without TargetAddress is reachable through the discovery portal itself
// (RFC 7143 §13.3), which the caller passes as fallback.
func ParseSendTargets(kvs []pdu.KeyValue, fallback Portal) ([]DiscoveredTarget, error) {
	var targets []DiscoveredTarget
	for _, kv := range kvs {
		switch kv.Key {
		case "TargetName":
			if kv.Value == "" {
				return nil, fmt.Errorf("SendTargets: empty TargetName")
			}
			targets = append(targets, DiscoveredTarget{Name: kv.Value})
		case "TargetAddress":
			if len(targets) == 0 {
				return nil, fmt.Errorf("SendTargets: TargetAddress %q before any TargetName", kv.Value)
			}
			p, err := ParseTargetAddress(kv.Value)
			if err != nil {
				return nil, fmt.Errorf("SendTargets: %w", err)
			}
			t := &targets[len(targets)-1]
			t.Portals = append(t.Portals, p)
		case "TargetAlias":
			// Informational; not part of a discovery record.
		default:
			return nil, fmt.Errorf("SendTargets: unexpected key %s", kv.Key)
		}
	}
	for i := range targets {
		if len(targets[i].Portals) == 0 {
			targets[i].Portals = []Portal{fallback}
		}
	}
	return targets, nil
}

// SendTargets runs a Text Request SendTargets=All exchange on a logged-in
// Discovery session and returns the targets, following continuations (F=0 with a
// target transfer tag) and joining text split by the C bit.
func SendTargets(ctx context.Context, t Transport, res *LoginResult, itt uint32, cmdSN uint32, fallback Portal) ([]DiscoveredTarget, error) {
	expStatSN := res.StatSN + 1
	ttt := pdu.ReservedTag
	data := pdu.AppendText(nil, pdu.KeyValue{Key: "SendTargets", Value: "All"})
	var text []byte
	for round := 0; ; round++ {
		if round > 1024 || len(text) > 16<<20 {
			return nil, &ProtocolError{Reason: "SendTargets response does not end"}
		}
		req := pdu.TextRequest{Immediate: true, Final: true, ITT: itt, TTT: ttt, CmdSN: cmdSN, ExpStatSN: expStatSN}
		p := &pdu.PDU{Data: data}
		req.Encode(&p.Header)
		if err := t.Send(ctx, p); err != nil {
			return nil, fmt.Errorf("send SendTargets: %w", err)
		}
		in, err := t.Receive(ctx)
		if err != nil {
			return nil, fmt.Errorf("receive SendTargets response: %w", err)
		}
		var resp pdu.TextResponse
		if err := resp.Decode(&in.Header); err != nil {
			if in.Header.Opcode() == pdu.OpReject {
				return nil, &ProtocolError{Reason: "target rejected the SendTargets request"}
			}
			return nil, &ProtocolError{Reason: fmt.Sprintf("expected a Text Response, got %v", in.Header.Opcode())}
		}
		if resp.ITT != itt {
			return nil, &ProtocolError{Reason: fmt.Sprintf("Text Response ITT 0x%x, request ITT 0x%x", resp.ITT, itt)}
		}
		expStatSN = resp.StatSN + 1
		res.StatSN = resp.StatSN
		text = append(text, in.Data...)
		// The answer is complete at the Final bit or at a PDU without a
		// target transfer tag, whichever comes, as open-iscsi reads it:
		// LIO ends an answer longer than one PDU (a thousand targets)
		// with Final set and its transfer tag still in the PDU.
		if resp.Final || resp.TTT == pdu.ReservedTag {
			break
		}
		ttt, data = resp.TTT, nil
	}
	kvs, err := pdu.ParseText(text)
	if err != nil {
		return nil, &ProtocolError{Reason: err.Error()}
	}
	return ParseSendTargets(kvs, fallback)
}

// Logout sends a Logout Request closing the session and waits for the response.
func Logout(ctx context.Context, t Transport, itt, cmdSN, expStatSN uint32) error {
	req := pdu.LogoutRequest{Immediate: true, Reason: pdu.LogoutCloseSession, ITT: itt, CmdSN: cmdSN, ExpStatSN: expStatSN}
	p := &pdu.PDU{}
	req.Encode(&p.Header)
	if err := t.Send(ctx, p); err != nil {
		return fmt.Errorf("send logout: %w", err)
	}
	in, err := t.Receive(ctx)
	if err != nil {
		return fmt.Errorf("receive logout response: %w", err)
	}
	var resp pdu.LogoutResponse
	if err := resp.Decode(&in.Header); err != nil {
		return &ProtocolError{Reason: fmt.Sprintf("expected a Logout Response, got %v", in.Header.Opcode())}
	}
	if resp.Response != pdu.LogoutClosed {
		return fmt.Errorf("logout refused by target (response %d)", resp.Response)
	}
	return nil
}

// DiscoveryConfig is what a SendTargets discovery needs.
type DiscoveryConfig struct {
	InitiatorName string
	Auth          Auth
	// MaxRecvDataSegmentLength is discovery.sendtargets.iscsi.MaxRecvDataSegmentLength.
	MaxRecvDataSegmentLength uint32
	// Dial opens the TCP connection; nil means a net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Discover connects to portal, logs in a Discovery session, asks SendTargets=All,
// logs out and returns the targets. ctx bounds the whole exchange.
func Discover(ctx context.Context, portal Portal, cfg DiscoveryConfig) ([]DiscoveredTarget, error) {
	dial := cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	lc := LoginConfig{
		InitiatorName: cfg.InitiatorName,
		Discovery:     true,
		// open-iscsi's discovery ISID: OUI format 00023D, qualifier 0.
		ISID:        pdu.ISID{0x00, 0x02, 0x3d, 0, 0, 0},
		Auth:        cfg.Auth,
		Operational: DefaultOperational(),
	}
	if cfg.MaxRecvDataSegmentLength != 0 {
		lc.Operational.MaxRecvDataSegmentLength = cfg.MaxRecvDataSegmentLength
	}
	for attempt := 0; ; attempt++ {
		c, err := dial(ctx, "tcp", portal.HostPort())
		if err != nil {
			return nil, fmt.Errorf("connect to %s: %w", portal.HostPort(), err)
		}
		targets, err := discoverOn(ctx, NewConnTransport(c), lc, portal)
		c.Close()
		if err == nil || attempt > 0 || !errors.Is(err, ErrCHAPAlgorithms) {
			return targets, err
		}
		lc = lc.MD5Only()
	}
}

func discoverOn(ctx context.Context, t *ConnTransport, lc LoginConfig, portal Portal) ([]DiscoveredTarget, error) {
	res, err := Login(ctx, t, lc)
	if err != nil {
		return nil, err
	}
	t.SetFullFeature(res.Params)
	targets, err := SendTargets(ctx, t, res, 1, lc.CmdSN, portal)
	if err != nil {
		return nil, err
	}
	// A failed logout does not make the answer wrong: the target already sent it.
	_ = Logout(ctx, t, 2, lc.CmdSN, res.StatSN+1)
	return targets, nil
}
