package isns

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Watch follows an iSNS server for as long as it runs, as iscsid's discovery
// daemon follows the server of an iSNS discovery record that says
// discovery.isns.use_discoveryd = Yes: it registers the initiator (an
// entity, a portal with the port State Change Notifications come to, the
// initiator node; [Client.RegisterInitiator]) and for SCNs about targets
// ([DefaultSCNBitmap]); it asks for every target the initiator may see, and
// again for one target whenever an SCN names it; it keeps the registration
// alive within the server's registration period ([Client.Refresh]),
// registers again when the server lost it or could not be reached, and
// deregisters when its context ends. Every step is logged.
//
// SCNs are hints: anyone who can reach the listener can send one. The watch
// acts only on what the server then answers.
type Watch struct {
	// Server is the server's address, "host[:port]" (port 3205 by default).
	Server string
	// Initiator is the iSCSI Name registered and asking.
	Initiator string
	// PollInterval, if positive, also asks for every target that often
	// (discovery.isns.discoveryd_poll_inval), for servers that send no SCNs.
	PollInterval time.Duration
	// Timeout bounds each exchange with the server; zero means
	// DefaultTimeout.
	Timeout time.Duration
	// SCNAddress is the TCP address the SCN listener listens on; "" means
	// every address and a free port. The port is registered, with the
	// address the server sees this host at.
	SCNAddress string
	// Retry is the pause after a failed registration before the next; zero
	// means 5 s, stock's.
	Retry time.Duration
	// Log receives everything the watch does; nil discards it.
	Log *slog.Logger
	// Found is called, on the watch's goroutine, with the targets the server
	// named that have a portal: all of them after each registration and poll
	// (why is "registration" or "poll"), one target after an SCN about it
	// ("SCN").
	Found func(ctx context.Context, targets []Target, why string)
	// Gone is called with the name of a target an SCN reported removed that
	// the server no longer names.
	Gone func(ctx context.Context, target string)
}

// Run follows the server until ctx ends and returns nil then; it returns an
// error at once only for what no retry mends (no initiator name, no SCN
// listener).
func (w *Watch) Run(ctx context.Context) error {
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("isns_server", withDefaultPort(w.Server))
	if w.Initiator == "" {
		return errors.New("isns: watch: no initiator name to register")
	}
	retry := w.Retry
	if retry <= 0 {
		retry = 5 * time.Second
	}
	for {
		err := w.follow(ctx, log)
		if ctx.Err() != nil {
			return nil
		}
		var fatal *watchError
		if errors.As(err, &fatal) {
			log.Error("iSNS: giving up", "err", err)
			return err
		}
		log.Warn("iSNS: registration lost or failed; registering again", "err", err, "in", retry)
		t := time.NewTimer(retry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// watchError is what no retry mends.
type watchError struct{ err error }

func (e *watchError) Error() string { return e.err.Error() }
func (e *watchError) Unwrap() error { return e.err }

// follow registers, then serves SCNs, refreshes and polls until the
// registration is lost (an error) or ctx ends (nil), and deregisters.
func (w *Watch) follow(ctx context.Context, log *slog.Logger) error {
	cl, err := Dial(ctx, w.Server, WithTimeout(w.Timeout))
	if err != nil {
		return err
	}
	defer cl.Close()
	scnAddr := w.SCNAddress
	if scnAddr == "" {
		scnAddr = ":0"
	}
	l, err := ListenSCN(ctx, "tcp", scnAddr)
	if err != nil {
		return &watchError{err}
	}
	defer l.Close()
	name := w.Initiator
	reg, err := cl.RegisterInitiator(ctx, Initiator{Name: name, SCN: l})
	if reg != nil && reg.EntityID != "" {
		defer w.deregister(cl, log, name, reg.EntityID)
	}
	if err != nil {
		return err
	}
	log.Info("iSNS: registered", "initiator", name, "entity", reg.EntityID, "period", reg.Period,
		"scn_port", l.Port(), "scn_bitmap", DefaultSCNBitmap.String())
	if err := w.discover(ctx, cl, log, "registration"); err != nil {
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
				return errors.New("isns: the SCN listener stopped")
			}
			if err := w.event(ctx, cl, log, ev); err != nil {
				return err
			}
		case <-refresh:
			if err := cl.Refresh(ctx, name, reg.EntityID); err != nil {
				return err
			}
			log.Debug("iSNS: registration refreshed", "entity", reg.EntityID)
		case <-poll:
			if err := w.discover(ctx, cl, log, "poll"); err != nil {
				return err
			}
		}
	}
}

// event acts on one SCN: asks the server about the target it names.
func (w *Watch) event(ctx context.Context, cl *Client, log *slog.Logger, ev Event) error {
	if ev.Kind == EventESI {
		return nil
	}
	log.Info("iSNS: state change notification", "event", ev.Kind.String(), "target", ev.Name,
		"bitmap", ev.Bitmap.String(), "for", ev.Destination, "from", ev.From)
	if ev.Name == "" || ev.Name == w.Initiator || ev.Kind == EventUnknown {
		return w.discover(ctx, cl, log, "SCN")
	}
	ts, err := cl.QueryTargets(ctx, w.Initiator, ev.Name)
	if err != nil {
		return err
	}
	ts = withPortals(ts)
	if len(ts) > 0 {
		if w.Found != nil {
			w.Found(ctx, ts, "SCN")
		}
		return nil
	}
	if ev.Kind == EventRemoved || ev.Kind == EventDDMemberRemoved {
		log.Info("iSNS: target gone", "target", ev.Name)
		if w.Gone != nil {
			w.Gone(ctx, ev.Name)
		}
		return nil
	}
	log.Info("iSNS: the server names no portal of the target", "target", ev.Name)
	return nil
}

// discover asks for every target and hands those with a portal to Found.
func (w *Watch) discover(ctx context.Context, cl *Client, log *slog.Logger, why string) error {
	ts, err := cl.QueryTargets(ctx, w.Initiator)
	if err != nil {
		return err
	}
	ts = withPortals(ts)
	log.Info("iSNS: targets the server names", "after", why, "targets", len(ts))
	if len(ts) > 0 && w.Found != nil {
		w.Found(ctx, ts, why)
	}
	return nil
}

// withPortals drops the targets no portal group leads to.
func withPortals(ts []Target) []Target {
	out := ts[:0]
	for _, t := range ts {
		if len(t.Portals) > 0 {
			out = append(out, t)
		}
	}
	return out
}

// deregister removes the registration with a bound of its own: ctx may
// have ended already.
func (w *Watch) deregister(cl *Client, log *slog.Logger, name, entity string) {
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := cl.Deregister(ctx, name, entity); err != nil {
		log.Warn("iSNS: deregistration failed", "entity", entity, "err", err)
		return
	}
	log.Info("iSNS: deregistered", "entity", entity)
}
