package session

import (
	"strings"
	"testing"

	"github.com/goiscsi/goiscsi/pdu"
)

// iserTarget answers an iSER login: the operational keys the initiator
// proposed, echoed (numbers as proposed), and the extra key values given.
func iserTarget(extra map[string]string) handler {
	return func(n int, req pdu.LoginRequest, kvs map[string]string) step {
		if req.CSG == pdu.SecurityNegotiation {
			return step{resp: pdu.LoginResponse{Transit: req.Transit},
				kvs: []pdu.KeyValue{kv("AuthMethod", "None"), kv("TargetPortalGroupTag", "1")}}
		}
		var out []pdu.KeyValue
		for _, k := range rdmaKeys {
			v, ok := kvs[k]
			if x, set := extra[k]; set {
				v, ok = x, x != ""
			}
			if ok && !strings.HasSuffix(k, "RecvDataSegmentLength") {
				out = append(out, kv(k, v))
			}
		}
		for _, k := range []string{"InitiatorRecvDataSegmentLength", "TargetRecvDataSegmentLength"} {
			if v := extra[k]; v != "" {
				out = append(out, kv(k, v))
			}
		}
		return step{resp: pdu.LoginResponse{Transit: true, NSG: pdu.FullFeaturePhase, TSIH: 7}, kvs: out}
	}
}

func TestLoginISER(t *testing.T) {
	tests := []struct {
		name       string
		xmit       uint32 // node.conn[0].iscsi.MaxXmitDataSegmentLength
		extra      map[string]string
		recv, sent uint32
		err        string
	}{
		{"target declares both", 0, map[string]string{"InitiatorRecvDataSegmentLength": "131072", "TargetRecvDataSegmentLength": "4096"}, 131072, 4096, ""},
		{"target declares nothing: ours stand", 0, nil, 262144, 8192, ""},
		{"record's xmit limit is declared", 65536, map[string]string{"TargetRecvDataSegmentLength": "262144"}, 262144, 65536, ""},
		{"target refuses RDMAExtensions", 0, map[string]string{"RDMAExtensions": "No"}, 0, 0, "RDMAExtensions"},
		{"target ignores RDMAExtensions", 0, map[string]string{"RDMAExtensions": ""}, 0, 0, "RDMAExtensions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			cfg.RDMA = true
			cfg.Operational.HeaderDigest = "CRC32C,None" // iSER never offers digests
			cfg.Operational.MaxXmitDataSegmentLength = tt.xmit
			res, st, err := runLogin(t, cfg, iserTarget(tt.extra))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one naming %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			offered := map[string]string{}
			for _, kvs := range st.texts {
				for _, x := range kvs {
					offered[x.Key] = x.Value
				}
			}
			for _, k := range []string{"HeaderDigest", "DataDigest", "MaxRecvDataSegmentLength"} {
				if v, ok := offered[k]; ok {
					t.Errorf("offered %s=%s over iSER", k, v)
				}
			}
			wantXmit := "8192"
			if tt.xmit != 0 {
				wantXmit = "65536"
			}
			if offered["RDMAExtensions"] != "Yes" || offered["InitiatorRecvDataSegmentLength"] != "262144" || offered["TargetRecvDataSegmentLength"] != wantXmit {
				t.Errorf("offered %v", offered)
			}
			if p := res.Params; p.MaxRecvDataSegmentLength != tt.recv || p.MaxXmitDataSegmentLength != tt.sent || p.HeaderDigest || p.DataDigest {
				t.Errorf("params %+v, want recv %d xmit %d, no digests", p, tt.recv, tt.sent)
			}
		})
	}
}

// A Discovery session over iSER negotiates as over TCP.
func TestLoginISERDiscovery(t *testing.T) {
	cfg := baseConfig()
	cfg.RDMA, cfg.Discovery, cfg.TargetName = true, true, ""
	_, st, err := runLogin(t, cfg, iserTarget(map[string]string{"RDMAExtensions": ""}))
	if err != nil {
		t.Fatal(err)
	}
	for _, kvs := range st.texts {
		for _, x := range kvs {
			if x.Key == "RDMAExtensions" {
				t.Errorf("discovery offered %s=%s", x.Key, x.Value)
			}
		}
	}
}
