package main

import (
	"sync"
	"time"

	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/mgmt"
)

// eventBufferLen is how many events a subscriber may fall behind before it
// is dropped: a burst of a storm's logins fits.
const eventBufferLen = 1024

// eventBus hands each event to every subscriber (goiscsiadm's and Go
// programs' OpEvents streams) without ever blocking the session that made it:
// a subscriber whose buffer is full is dropped, its channel closed, and the
// server ends its stream with EventLost.
type eventBus struct {
	mu   sync.Mutex
	subs map[chan mgmt.Event]struct{}
}

// subscribe adds a subscriber.
func (b *eventBus) subscribe() (<-chan mgmt.Event, func()) {
	ch := make(chan mgmt.Event, eventBufferLen)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan mgmt.Event]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[ch]; ok {
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// publish hands e to every subscriber, dropping those that fell behind.
func (b *eventBus) publish(e mgmt.Event) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- e:
		default:
			delete(b.subs, ch)
			close(ch)
		}
	}
}

// SubscribeEvents makes the daemon an mgmt.EventSource.
func (d *daemon) SubscribeEvents() (<-chan mgmt.Event, func()) { return d.bus.subscribe() }

// event publishes what happened to session k (and to its luns).
func (d *daemon) event(kind mgmt.EventKind, k *ksession.Session, detail string, luns ...uint64) {
	p := pathID(k)
	d.bus.publish(mgmt.Event{Time: time.Now(), Kind: kind, SID: int(k.SID), Target: p.Target, Portal: p.Portal,
		Iface: p.Iface, State: k.State().String(), LUNs: luns, Detail: detail})
}
