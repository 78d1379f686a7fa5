package nlinktest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"log/slog"
	"testing"
	"time"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/ksession"
	"github.com/goiscsi/goiscsi/nlink/nlinktest"
	"github.com/goiscsi/goiscsi/session"
	"github.com/goiscsi/goiscsi/test/target"
)

const (
	iqn = "iqn.2026-11.dev.goiscsi:nlinktest"
	ini = "iqn.2026-11.dev.goiscsi:nlinktest-initiator"
)

func cdb10(op byte, lba uint32, blocks uint16) []byte {
	c := []byte{op, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

// Commands run through the fake kernel write and read back the same bytes
// under every way a write's data may travel (immediate, unsolicited, R2T), with
// digests on.
func TestCommandsWriteAndReadBack(t *testing.T) {
	for name, op := range map[string]func(*session.Operational){
		"immediate and unsolicited": func(o *session.Operational) {},
		"R2T only":                  func(o *session.Operational) { o.InitialR2T, o.ImmediateData = true, false },
		"digests": func(o *session.Operational) {
			o.HeaderDigest, o.DataDigest = "CRC32C", "CRC32C"
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv, err := target.New(&target.Config{Targets: []target.TargetConfig{{
				Name: iqn, PortalGroups: []target.PortalGroupConfig{{Tag: 1, Portals: []string{"127.0.0.1:0"}}},
				LUNs: []target.LUNConfig{{Number: 0, Size: 4 << 20}},
			}}}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			ps, _ := srv.Portals(iqn)
			k := nlinktest.New()
			defer k.Close()
			n := ksession.Node{Node: conf.Node{Target: iqn, InitiatorName: ini, Operational: session.DefaultOperational(),
				Auth: session.Auth{Method: session.AuthNone}, Address: ps[0].Address, Port: ps[0].Port, Timeouts: conf.DefaultTimeouts(),
				Iface: conf.Iface{Name: "default"}, CmdsMax: 128, QueueDepth: 32}}
			op(&n.Operational)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := ksession.Establish(ctx, k.Conn(), n, ksession.Hooks{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Logout(ctx)
			data := make([]byte, 600<<10) // past FirstBurstLength and MaxBurstLength
			rand.Read(data)
			res, err := k.Command(ctx, s.SID, 0, cdb10(0x2a, 8, uint16(len(data)/512)), data, 0)
			if err != nil || res.Status != 0 {
				t.Fatalf("write: %+v %v", res, err)
			}
			res, err = k.Command(ctx, s.SID, 0, cdb10(0x28, 8, uint16(len(data)/512)), nil, len(data))
			if err != nil || res.Status != 0 || !bytes.Equal(res.Data, data) {
				t.Fatalf("read back: status %+v err %v equal %v", res, err, res != nil && bytes.Equal(res.Data, data))
			}
			// A read past the end fails with CHECK CONDITION and its sense.
			res, err = k.Command(ctx, s.SID, 0, cdb10(0x28, 1<<30, 1), nil, 512)
			if err != nil || res.Status != 2 || len(res.Sense) < 14 || res.Sense[12] != 0x21 {
				t.Fatalf("read out of range: %+v %v", res, err)
			}
		})
	}
}
