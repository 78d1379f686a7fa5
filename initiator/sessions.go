package initiator

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/iscsierr"
	"github.com/goiscsi/goiscsi/mgmt"
	"github.com/goiscsi/goiscsi/scan"
)

// Session is one iSCSI session as this host has it: what goiscsid knows of it
// (the login's settings, the negotiated values, the scan policy), what the
// kernel shows (its state, SCSI host and devices).
type Session struct {
	SID int
	// Transport is the transport's name, tcp or iser.
	Transport string
	// Flash is set for a session an offload HBA started from its flash
	// rather than a daemon (sysfs creator -1).
	Flash      bool
	TargetName string
	TPGT       int
	// Address and Port are the portal the session is connected to now;
	// PersistentAddress and PersistentPort the one it was created for (the
	// node record's, which udev's by-path names use).
	Address           string
	Port              int
	PersistentAddress string
	PersistentPort    int
	Iface             conf.Iface
	// ConnState is the daemon's view of the connection ("LOGGED IN",
	// "TRANSPORT WAIT", ...), SessionState the kernel's (LOGGED_IN, FAILED,
	// FREE), InternalState the daemon's recovery stage ("NO CHANGE",
	// "REOPEN", ...); empty when not known.
	ConnState, SessionState, InternalState string
	Timeouts                               Timeouts
	CHAP                                   CHAP
	// Params are the values the login settled; nil when no daemon knows
	// them (a session listed from sysfs alone).
	Params *Negotiated
	// Host is the session's SCSI host; nil when it is not known.
	Host *Host
	// Devices are the host's SCSI devices (LUNs) in the order of their
	// H:C:T:L names as strings, stock's order (2:0:0:10 before 2:0:0:2).
	Devices []scan.Device
	// ScanPolicy is the scan policy in effect: auto, lun0 or manual; empty
	// when no daemon knows it.
	ScanPolicy string
	// HeldLUNs are the LUNs the host removed while the target still
	// reports them: no broad scan adds them back (an explicit ScanLUN does).
	HeldLUNs []scan.HeldLUN
}

// Timeouts are a session's error-handling timeouts in seconds; -1 is unknown.
type Timeouts struct {
	Recovery, TargetReset, LUNReset, Abort int
}

// CHAP are a session's CHAP names, and passwords when asked for.
type CHAP struct {
	Username, Password, UsernameIn, PasswordIn string
}

// Negotiated are the values a login settled.
type Negotiated struct {
	HeaderDigest, DataDigest string // None or CRC32C
	MaxRecvDataSegmentLength int
	MaxXmitDataSegmentLength int
	FirstBurstLength         int
	MaxBurstLength           int
	ImmediateData            bool
	InitialR2T               bool
	MaxOutstandingR2T        int
}

// Host is the SCSI host a session runs on.
type Host struct {
	Number int
	// State is the host's sysfs state (running, ...); empty when unknown.
	State string
}

// ListOptions say how much a session listing holds.
type ListOptions struct {
	// Brief leaves out all but what names a session (SID, target, portals,
	// iface, transport): what the flat listing prints, at a third of the
	// cost.
	Brief bool
	// Secrets includes CHAP passwords (iscsiadm -S).
	Secrets bool
}

// Sessions lists the host's sessions, in SID order: goiscsid's, or what sysfs
// shows when no goiscsid runs (as stock iscsiadm reads sysfs), with the
// kernel's states, hosts and devices unless opts.Brief.
func (c *Client) Sessions(ctx context.Context, opts ListOptions) ([]Session, error) {
	resp, err := c.do(ctx, &mgmt.Request{Op: mgmt.OpSessions, ShowSecrets: opts.Secrets, Brief: opts.Brief})
	var from []mgmt.Session
	switch {
	case err == nil:
		from = resp.Sessions
	case noDaemon(err):
		from, err = c.sysfsSessions()
		if err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	out := make([]Session, 0, len(from))
	var devs map[int][]scan.Device
	if !opts.Brief {
		devs, _ = scan.Sysfs{Root: c.sysfs()}.DevicesByHost()
	}
	for _, s := range from {
		v := sessionOf(s)
		if !opts.Brief {
			c.addKernelView(&v, s, devs[s.HostNo])
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SID < out[j].SID })
	return out, nil
}

// Session returns session sid; the error has code SessNotFound when there is
// no such session.
func (c *Client) Session(ctx context.Context, sid int, opts ListOptions) (*Session, error) {
	all, err := c.Sessions(ctx, opts)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].SID == sid {
			return &all[i], nil
		}
	}
	return nil, iscsierr.Errorf(iscsierr.SessNotFound, "no session with sid %d", sid)
}

// sessionOf is the daemon's view of a session.
func sessionOf(s mgmt.Session) Session {
	v := Session{
		SID: s.SID, Transport: s.Transport, TargetName: s.TargetName, TPGT: s.TPGT,
		Address: s.Address, Port: s.Port, PersistentAddress: s.PersistentAddress, PersistentPort: s.PersistentPort,
		Iface:     conf.Iface{Name: or(s.Iface, "default"), Transport: s.Transport, InitiatorName: s.InitiatorName, IPAddress: s.LocalAddress},
		ConnState: s.ConnState, InternalState: s.InternalState,
		Timeouts: Timeouts{Recovery: s.Timeouts.Recovery, TargetReset: s.Timeouts.TargetReset,
			LUNReset: s.Timeouts.LUNReset, Abort: s.Timeouts.Abort},
		CHAP:       CHAP{Username: s.CHAP.Username, Password: s.CHAP.Password, UsernameIn: s.CHAP.UsernameIn, PasswordIn: s.CHAP.PasswordIn},
		ScanPolicy: s.ScanPolicy,
		HeldLUNs:   s.HeldLUNs,
	}
	if p := s.Params; p.HeaderDigest != "" {
		v.Params = &Negotiated{HeaderDigest: p.HeaderDigest, DataDigest: p.DataDigest,
			MaxRecvDataSegmentLength: p.MaxRecvDataSegmentLength, MaxXmitDataSegmentLength: p.MaxXmitDataSegmentLength,
			FirstBurstLength: p.FirstBurstLength, MaxBurstLength: p.MaxBurstLength,
			ImmediateData: p.ImmediateData, InitialR2T: p.InitialR2T, MaxOutstandingR2T: p.MaxOutstandingR2T}
	}
	return v
}

// addKernelView adds what sysfs shows of session s: its state, its host, the
// iface's addresses and the devices devs of its host.
func (c *Client) addKernelView(v *Session, s mgmt.Session, devs []scan.Device) {
	v.SessionState = scan.ReadAttr(filepath.Join(c.sysfs(), "class", "iscsi_session", fmt.Sprintf("session%d", s.SID), "state"))
	// The current portal as the kernel spells it, as stock shows it: an
	// IPv6 address in all eight groups.
	if a := scan.ReadAttr(filepath.Join(c.sysfs(), "class", "iscsi_connection", fmt.Sprintf("connection%d:0", s.SID), "address")); a != "" {
		v.Address = a
	}
	if v.Iface.IPAddress == "" {
		v.Iface.IPAddress = c.HostAttr(s.HostNo, "ipaddress")
	}
	v.Iface.HWAddress, v.Iface.Netdev = s.HWAddress, s.Netdev
	if s.HWAddress == "" && s.Netdev == "" {
		// No daemon says: the host's, where an unbound iface left them
		// empty, which stock's listing shows as "default".
		unbound := func(v string) string {
			if v == "" || v == "(null)" {
				return "default"
			}
			return v
		}
		v.Iface.HWAddress, v.Iface.Netdev = unbound(c.HostAttr(s.HostNo, "hwaddress")), unbound(c.HostAttr(s.HostNo, "netdev"))
	}
	v.Host = &Host{Number: s.HostNo, State: c.HostState(s.HostNo)}
	v.Devices = devices(devs)
}

// HostAttr reads attribute name of iSCSI host hostNo: the addresses the
// daemon set ("default" for an unbound iface), "(null)" for what nobody set.
func (c *Client) HostAttr(hostNo int, name string) string {
	return scan.ReadAttr(filepath.Join(c.sysfs(), "class", "iscsi_host", fmt.Sprintf("host%d", hostNo), name))
}

// HostState is SCSI host hostNo's state (running, ...).
func (c *Client) HostState(hostNo int) string {
	return scan.ReadAttr(filepath.Join(c.sysfs(), "class", "scsi_host", fmt.Sprintf("host%d", hostNo), "state"))
}

// TransportClassVersion is the kernel's scsi_transport_iscsi version, which
// the most detailed listing prints first; empty when unknown.
func (c *Client) TransportClassVersion() string {
	return scan.ReadAttr(filepath.Join(c.sysfs(), "module", "scsi_transport_iscsi", "version"))
}

// devices is devs in stock's order.
func devices(devs []scan.Device) []scan.Device {
	devs = append([]scan.Device(nil), devs...)
	sort.SliceStable(devs, func(i, j int) bool { return devs[i].HCTL() < devs[j].HCTL() })
	return devs
}

// Devices lists the SCSI devices of host hostNo, in stock's order.
func (c *Client) Devices(hostNo int) []scan.Device {
	devs, _ := scan.Sysfs{Root: c.sysfs()}.Devices(hostNo)
	return devices(devs)
}

// sysfsSessions is what sysfs shows of the kernel's sessions when goiscsid is
// not running.
func (c *Client) sysfsSessions() ([]mgmt.Session, error) {
	all, err := scan.Sysfs{Root: c.sysfs()}.Sessions()
	if err != nil {
		return nil, iscsierr.Errorf(iscsierr.SysfsLookup, "reading the sessions from sysfs: %v", err)
	}
	out := make([]mgmt.Session, 0, len(all))
	for _, s := range all {
		out = append(out, mgmt.Session{SID: s.SID, HostNo: s.Host, TargetName: s.TargetName, TPGT: s.TPGT,
			Address: s.Address, Port: s.Port, PersistentAddress: s.PersistentAddress, PersistentPort: s.PersistentPort,
			Iface: s.Iface, Transport: hostTransport(c.sysfs(), s.Host), InitiatorName: s.InitiatorName})
	}
	return out, nil
}

// hostTransport is the iSCSI transport of SCSI host hostNo as stock finds it:
// the host's driver (proc_name iscsi_tcp, iscsi_iser) without its "iscsi_"
// prefix; tcp when sysfs does not say.
func hostTransport(sysfsRoot string, hostNo int) string {
	b, err := os.ReadFile(filepath.Join(sysfsRoot, "class", "scsi_host", "host"+strconv.Itoa(hostNo), "proc_name"))
	name := strings.TrimPrefix(strings.TrimSpace(string(b)), "iscsi_")
	if err != nil || name == "" {
		return "tcp"
	}
	return name
}
