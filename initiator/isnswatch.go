package initiator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/isns"
	"github.com/goiscsi/goiscsi/session"
)

// ISNSWatch follows an iSNS server for as long as it runs, as iscsid's
// discovery daemon follows the server of an iSNS discovery record that says
// discovery.isns.use_discoveryd = Yes: it registers the initiator (an entity,
// a portal with the port State Change Notifications come to, the initiator
// node) and registers for SCNs about targets; it asks the server for every
// target it may see, and again for one target whenever an SCN names it; it
// keeps the registration alive within the server's registration period,
// registers again when the server lost it or could not be reached, and
// deregisters when ctx ends.
//
// What the server names becomes node records, stored as `iscsiadm -m
// discoverydb -t isns --discover` stores them (node.discovery_type = isns,
// the server as discovery source; a record that exists keeps its settings),
// and goes to Found; a target an SCN reports removed goes to Gone, its records
// staying, as after a discovery that finds nothing. Stock's daemon stores no
// records and logs in to every portal it is told of; the caller of Found
// decides (goiscsid logs in to records whose node.startup is automatic).
//
// SCNs are hints: anyone who can reach the listener can send one. The watch
// acts only on what the server then answers.
type ISNSWatch struct {
	// Client reaches the node database, iscsid.conf and the initiator name.
	Client *Client
	// InitiatorName is the name registered; empty means the Client's
	// (initiatorname.iscsi).
	InitiatorName string
	// Server is the iSNS server; port 0 means 3205.
	Server Portal
	// PollInterval, if positive, also asks for every target that often
	// (discovery.isns.discoveryd_poll_inval), for servers that send no SCNs.
	PollInterval time.Duration
	// Timeout bounds each exchange with the server; zero means
	// isns.DefaultTimeout.
	Timeout time.Duration
	// SCNAddress is the TCP address the SCN listener listens on; "" means
	// every address and a free port. The port is what gets registered, with
	// the address the server sees this host at.
	SCNAddress string
	// Retry is the pause after a failed registration before the next; zero
	// means 5 s, stock's.
	Retry time.Duration
	// Log receives everything the watch does; nil discards it.
	Log *slog.Logger
	// Found is called, on the watch's goroutine, with the node records of
	// the targets the server named: all of them after each registration and
	// poll, one target's after an SCN about it.
	Found func(ctx context.Context, recs []*conf.Record)
	// Gone is called with the name of a target an SCN reported removed that
	// the server no longer names.
	Gone func(ctx context.Context, target string)
}

// Run follows the server until ctx ends; it returns nil then, or an error
// that makes following impossible (no initiator name, no listener). A watch
// runs once.
func (w *ISNSWatch) Run(ctx context.Context) error {
	port := w.Server.Port
	if port <= 0 {
		port = isns.DefaultPort
	}
	w.Server.Port = port
	if w.Log == nil {
		w.Log = slog.New(slog.DiscardHandler)
	}
	w.Log = w.Log.With("isns_server", net.JoinHostPort(w.Server.Address, strconv.Itoa(port)))
	retry := w.Retry
	if retry <= 0 {
		retry = 5 * time.Second
	}
	for {
		err := w.follow(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var fatal *watchError
		if errors.As(err, &fatal) {
			w.Log.Error("iSNS: giving up", "err", err)
			return err
		}
		w.Log.Warn("iSNS: registration lost or failed; registering again", "err", err, "in", retry)
		if !pause(ctx, retry) {
			return nil
		}
	}
}

// watchError is what no retry mends.
type watchError struct{ err error }

func (e *watchError) Error() string { return e.err.Error() }
func (e *watchError) Unwrap() error { return e.err }

// follow registers, then serves SCNs, refreshes and polls until the
// registration is lost (an error) or ctx ends (nil), and deregisters.
func (w *ISNSWatch) follow(ctx context.Context) error {
	name := w.InitiatorName
	if name == "" {
		var err error
		if name, err = w.Client.InitiatorName(); err != nil {
			return &watchError{fmt.Errorf("iSNS registration needs the initiator name: %w", err)}
		}
	}
	addr := net.JoinHostPort(w.Server.Address, strconv.Itoa(w.Server.Port))
	cl, err := isns.Dial(ctx, addr, isns.WithTimeout(w.Timeout))
	if err != nil {
		return err
	}
	defer cl.Close()
	lctx, stopListener := context.WithCancel(ctx)
	defer stopListener()
	scnAddr := w.SCNAddress
	if scnAddr == "" {
		scnAddr = ":0"
	}
	l, err := isns.ListenSCN(lctx, "tcp", scnAddr)
	if err != nil {
		return &watchError{err}
	}
	defer l.Close()
	reg, err := cl.RegisterInitiator(ctx, isns.Initiator{Name: name, SCN: l})
	if reg != nil && reg.EntityID != "" {
		defer w.deregister(cl, name, reg.EntityID)
	}
	if err != nil {
		return err
	}
	w.Log.Info("iSNS: registered", "initiator", name, "entity", reg.EntityID, "period", reg.Period,
		"scn_port", l.Port(), "scn_bitmap", isns.DefaultSCNBitmap.String())
	if err := w.discover(ctx, cl, name, "registration"); err != nil {
		return err
	}
	var refresh, poll <-chan time.Time
	if reg.Period > 0 {
		t := time.NewTicker(max(reg.Period/2, time.Second))
		defer t.Stop()
		refresh = t.C
	}
	if w.PollInterval > 0 {
		t := time.NewTicker(w.PollInterval)
		defer t.Stop()
		poll = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-l.Events():
			if !ok {
				return errors.New("iSNS: the SCN listener stopped")
			}
			if err := w.event(ctx, cl, name, ev); err != nil {
				return err
			}
		case <-refresh:
			if err := cl.Refresh(ctx, name, reg.EntityID); err != nil {
				return err
			}
			w.Log.Debug("iSNS: registration refreshed", "entity", reg.EntityID)
		case <-poll:
			if err := w.discover(ctx, cl, name, "poll"); err != nil {
				return err
			}
		}
	}
}

// event acts on one SCN: asks the server about the target it names.
func (w *ISNSWatch) event(ctx context.Context, cl *isns.Client, name string, ev isns.Event) error {
	if ev.Kind == isns.EventESI {
		return nil
	}
	w.Log.Info("iSNS: state change notification", "event", ev.Kind.String(), "target", ev.Name,
		"bitmap", ev.Bitmap.String(), "for", ev.Destination, "from", ev.From)
	if ev.Name == "" || ev.Name == name || ev.Kind == isns.EventUnknown {
		return w.discover(ctx, cl, name, "SCN")
	}
	ts, err := cl.QueryTargets(ctx, name, ev.Name)
	if err != nil {
		return err
	}
	found := discoveredTargets(ts)
	if len(found) == 0 {
		if ev.Kind == isns.EventRemoved || ev.Kind == isns.EventDDMemberRemoved {
			w.Log.Info("iSNS: target gone; its node records stay", "target", ev.Name)
			if w.Gone != nil {
				w.Gone(ctx, ev.Name)
			}
		} else {
			w.Log.Info("iSNS: the server names no portal of the target", "target", ev.Name)
		}
		return nil
	}
	return w.store(ctx, found)
}

// discover asks for every target and stores what the server names.
func (w *ISNSWatch) discover(ctx context.Context, cl *isns.Client, name, why string) error {
	ts, err := cl.QueryTargets(ctx, name)
	if err != nil {
		return err
	}
	found := discoveredTargets(ts)
	w.Log.Info("iSNS: targets the server names", "after", why, "targets", len(found))
	if len(found) == 0 {
		return nil
	}
	return w.store(ctx, found)
}

// store writes the node records of found, as a discovery does, and hands
// them to Found. A record that cannot be written is logged and left out.
func (w *ISNSWatch) store(ctx context.Context, found []session.DiscoveredTarget) error {
	cfg, err := w.Client.Config()
	if err != nil {
		return &watchError{err}
	}
	ifaces, err := w.Client.discoveryIfaces(nil)
	if err != nil {
		return &watchError{err}
	}
	db := w.Client.DB()
	src := discoverySource{"isns", w.Server.Address, w.Server.Port}
	var recs []*conf.Record
	for _, t := range found {
		existed := map[conf.NodeID]bool{}
		if old, _ := db.FindNodes(t.Name, "", 0, ""); len(old) > 0 {
			for _, r := range old {
				existed[r.ID()] = true
			}
		}
		rs, err := w.Client.discovered(ctx, cfg, []session.DiscoveredTarget{t}, ifaces, src, false, false)
		if err != nil {
			w.Log.Error("iSNS: cannot store the node record", "target", t.Name, "err", err)
			continue
		}
		for _, r := range rs {
			id := r.ID()
			if !existed[id] {
				w.Log.Info("iSNS: node record written", "target", id.Target, "portal", id.Portal(), "iface", id.Iface,
					"startup", r.Get("node.startup"))
			}
		}
		recs = append(recs, rs...)
	}
	if len(recs) > 0 && w.Found != nil {
		w.Found(ctx, recs)
	}
	return nil
}

// deregister removes the registration, with a bound of its own: ctx may
// have ended already.
func (w *ISNSWatch) deregister(cl *isns.Client, name, entity string) {
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = isns.DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := cl.Deregister(ctx, name, entity); err != nil {
		w.Log.Warn("iSNS: deregistration failed", "entity", entity, "err", err)
		return
	}
	w.Log.Info("iSNS: deregistered", "entity", entity)
}
