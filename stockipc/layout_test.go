package stockipc

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The layouts' invariants: each field lies inside node_rec_t, no two overlap,
// keys are unique, and the sizes tell the layouts apart.
func TestLayoutTables(t *testing.T) {
	sizes := map[int]string{}
	for _, l := range allLayouts {
		if prev, ok := sizes[l.reqSize]; ok {
			t.Errorf("%s and %s share size %d", prev, l.versions, l.reqSize)
		}
		sizes[l.reqSize] = l.versions
		if l.reqSize != offRec+l.recSize {
			t.Errorf("%s: request %d bytes, record %d at %d", l.versions, l.reqSize, l.recSize, offRec)
		}
		keys := map[string]bool{}
		type span struct {
			key      string
			off, end int
		}
		var spans []span
		for _, f := range l.fields {
			if keys[f.key] {
				t.Errorf("%s: key %s twice", l.versions, f.key)
			}
			keys[f.key] = true
			if f.off < 16 || f.off+f.size > l.recSize { // the first 16 bytes are the list head
				t.Errorf("%s: %s at %d+%d outside the record", l.versions, f.key, f.off, f.size)
			}
			switch f.kind {
			case kInt, kEnum:
				if f.size != 4 {
					t.Errorf("%s: %s is %d bytes", l.versions, f.key, f.size)
				}
			case kAlgList:
				if f.size != 4*chapAlgCount {
					t.Errorf("%s: %s is %d bytes", l.versions, f.key, f.size)
				}
			}
			if f.kind == kEnum && len(f.names) == 0 {
				t.Errorf("%s: enum %s has no names", l.versions, f.key)
			}
			spans = append(spans, span{f.key, f.off, f.off + f.size})
		}
		slices.SortFunc(spans, func(a, b span) int { return a.off - b.off })
		for i := 1; i < len(spans); i++ {
			if spans[i].off < spans[i-1].end {
				t.Errorf("%s: %s overlaps %s", l.versions, spans[i].key, spans[i-1].key)
			}
		}
		if l.sessionMultiple >= l.recSize || l.ifaceBootproto+l.ifaceBootprotoLen > l.recSize {
			t.Errorf("%s: fixed offsets outside the record", l.versions)
		}
	}
	if got := KnownSizes(); !slices.Equal(got, []int{16128, 16112, 16104, 16088}) {
		t.Errorf("KnownSizes() = %v", got)
	}
	if Versions(16104) != "2.1.1 to 2.1.10" || Versions(1) != "" {
		t.Errorf("Versions(16104) = %q, Versions(1) = %q", Versions(16104), Versions(1))
	}
	// What changes between releases, as the headers say.
	diff := func(a, b *layout) (added, removed []string) {
		ka, kb := map[string]bool{}, map[string]bool{}
		for _, f := range a.fields {
			ka[f.key] = true
		}
		for _, f := range b.fields {
			kb[f.key] = true
			if !ka[f.key] {
				added = append(added, f.key)
			}
		}
		for k := range ka {
			if !kb[k] {
				removed = append(removed, k)
			}
		}
		slices.Sort(added)
		slices.Sort(removed)
		return added, removed
	}
	for _, c := range []struct {
		a, b           *layout
		added, removed []string
	}{
		{v2_1_0, v2_1_1, []string{"node.session.auth.chap_algs"}, nil},
		{v2_1_1, v2_1_11, []string{"node.session.conn_reopen_log_freq"}, nil},
		{v2_1_11, vHead, []string{"node.conn[0].tcp.congestion_control", "node.session.sess_reopen_log_freq"}, []string{"node.session.conn_reopen_log_freq"}},
	} {
		added, removed := diff(c.a, c.b)
		if !slices.Equal(added, c.added) || !slices.Equal(removed, c.removed) {
			t.Errorf("%s → %s: added %v removed %v", c.a.versions, c.b.versions, added, removed)
		}
	}
}

func goldenReq(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/stock-2.1.8/" + name + ".req")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// put writes v into the golden request's field key (2.1.8's layout).
func put(b []byte, key string, v []byte) {
	f := v2_1_1.field(key)
	copy(b[offRec+f.off:offRec+f.off+f.size], v)
}

func u32(v uint32) []byte { return ne.AppendUint32(nil, v) }

func TestDecodeRequestRefuses(t *testing.T) {
	const secret = "s3cret-passw0rd"
	for _, c := range []struct {
		name  string
		patch func(b []byte)
		want  string
	}{
		{"string without NUL", func(b []byte) { put(b, "node.name", bytes.Repeat([]byte("a"), 255)) }, "node.name: no NUL within its 255 bytes"},
		{"control character", func(b []byte) { put(b, "node.conn[0].address", []byte("127.0.0.1\n\x00")) }, "node.conn[0].address: control character at byte 9"},
		{"enum out of range", func(b []byte) { put(b, "node.startup", u32(3)) }, "node.startup: value 3 is none of manual, automatic, onboot"},
		{"negative enum", func(b []byte) { put(b, "node.conn[0].iscsi.HeaderDigest", u32(0xffffffff)) }, "node.conn[0].iscsi.HeaderDigest: value -1 is none of"},
		{"unknown CHAP algorithm", func(b []byte) {
			f := v2_1_1.field("node.session.auth.chap_algs")
			copy(b[offRec+f.off+8:], u32(99))
		}, "node.session.auth.chap_algs: entry 2 is 99"},
		{"password length", func(b []byte) { put(b, "node.session.auth.password_length", u32(3)) }, "node.session.auth.password_length is 3, not the length of node.session.auth.password"},
		{"secret with a control character", func(b []byte) { put(b, "node.session.auth.password", []byte(secret[:4]+"\x01")) }, "node.session.auth.password: control character at byte 4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := goldenReq(t, "login-chap")
			c.patch(b)
			_, err := DecodeRequest(b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "SESSION_LOGIN request: ") {
				t.Errorf("err %q does not name the command", err)
			}
			if strings.Contains(err.Error(), secret[:4]) {
				t.Errorf("err %q shows the secret", err)
			}
		})
	}
	_, err := DecodeRequest(make([]byte, 100))
	var us *UnknownSizeError
	if !errors.As(err, &us) || us.Size != 100 || !strings.Contains(err.Error(), "16104 (2.1.1 to 2.1.10)") {
		t.Errorf("100 bytes: %v", err)
	}
}

// A record goes into every layout and comes back, with each release's keys;
// the discovery type's wire value follows the release's enum.
func TestRecordEveryLayout(t *testing.T) {
	base, err := DecodeRequest(goldenReq(t, "login-chap"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range allLayouts {
		t.Run(l.versions, func(t *testing.T) {
			rec := maps.Clone(base.Record)
			switch l {
			case v2_1_0:
				delete(rec, "node.session.auth.chap_algs")
			case v2_1_11:
				rec["node.session.conn_reopen_log_freq"] = "3"
			case vHead:
				rec["node.session.sess_reopen_log_freq"] = "3"
				rec["node.conn[0].tcp.congestion_control"] = "bbr"
			}
			req := &Request{Command: CmdSessionLogin, Size: l.reqSize, Record: rec, Multiple: true}
			b, err := EncodeRequest(req)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != l.reqSize {
				t.Fatalf("%d bytes", len(b))
			}
			wantType := uint32(4) // static
			if l == vHead {
				wantType = 3
			}
			if f := l.field("node.discovery_type"); ne.Uint32(b[offRec+f.off:]) != wantType {
				t.Errorf("static discovery is %d on the wire, want %d", ne.Uint32(b[offRec+f.off:]), wantType)
			}
			got, err := DecodeRequest(b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, req) {
				for k, v := range req.Record {
					if got.Record[k] != v {
						t.Errorf("%s: %q, want %q", k, got.Record[k], v)
					}
				}
				t.Fatalf("round trip differs")
			}
		})
	}
	// A key of another release is refused by name.
	_, err = EncodeRequest(&Request{Command: CmdSessionLogin, Size: 16104, Record: map[string]string{"node.session.sess_reopen_log_freq": "1"}})
	if err == nil || !strings.Contains(err.Error(), "no key node.session.sess_reopen_log_freq in the open-iscsi 2.1.1 to 2.1.10 record") {
		t.Errorf("foreign key: %v", err)
	}
}

func TestEncodeRequestRefuses(t *testing.T) {
	for _, c := range []struct {
		key, value, want string
	}{
		{"node.name", strings.Repeat("x", 255), "node.name: 255 bytes do not fit in 255 with the NUL"},
		{"node.tpgt", "1x", `node.tpgt: "1x" is not a 32-bit integer`},
		{"iface.prefix_len", "256", `iface.prefix_len: "256" is not a 8-bit unsigned integer`},
		{"node.session.scan", "sometimes", `node.session.scan: "sometimes" is none of manual, auto`},
		{"node.session.auth.chap_algs", "MD5,MD4", `"MD4" is no known CHAP algorithm`},
		{"node.session.auth.chap_algs", "MD5,MD5,MD5,MD5,MD5,MD5", "6 algorithms, at most 5"},
		{"node.session.auth.password", "a\nb", "node.session.auth.password: control character in the value"},
	} {
		_, err := EncodeRequest(&Request{Command: CmdSessionLogin, Record: map[string]string{c.key: c.value}})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s = %q: err %v, want %q", c.key, c.value, err, c.want)
		}
	}
	if _, err := EncodeRequest(&Request{Size: 5}); err == nil {
		t.Error("size 5 encoded")
	}
}

// The iface's address family picks the keys, as iface_get_iptype does.
func TestIfaceFamily(t *testing.T) {
	for _, c := range []struct {
		l                *layout
		name, addr, boot string
		v6               bool
	}{
		{v2_1_1, "default", "", "", false},
		{v2_1_1, "ipv6-test", "", "", true},
		{v2_1_1, "x", "<empty>", "", false},
		{v2_1_1, "x", "fd00::1", "", true},
		{v2_1_1, "x", "fd00::1", "dhcp", false},
		{v2_1_1, "x", "10.0.0.1", "", false},
		{v2_1_0, "ipv4-ipv6", "", "", false},
		{v2_1_1, "ipv4-ipv6", "", "", true},
		{vHead, "ipv6", "default", "", true},
		{v2_1_1, "ipv6", "default", "", true}, // no dot: IPv6 before master
		{v2_1_1, "x", "default", "", true},
		{vHead, "x", "default", "", false},
	} {
		rec := make([]byte, c.l.recSize)
		copy(rec[c.l.ifaceName:], c.name)
		copy(rec[c.l.ifaceIPAddress:], c.addr)
		copy(rec[c.l.ifaceBootproto:], c.boot)
		if got := c.l.ipv6Iface(rec); got != c.v6 {
			t.Errorf("%s name %q addr %q boot %q: IPv6 %v", c.l.versions, c.name, c.addr, c.boot, got)
		}
	}
}

func TestCommandString(t *testing.T) {
	if CmdSessionLogin.String() != "SESSION_LOGIN" || Command(42).String() != "command 42" {
		t.Errorf("%v %v", CmdSessionLogin, Command(42))
	}
	if !IsSecretKey("node.session.auth.password_in") || IsSecretKey("node.session.auth.username") || IsSecretKey("nope") {
		t.Error("IsSecretKey")
	}
}
