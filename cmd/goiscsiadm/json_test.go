package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSessionsJSON(t *testing.T) {
	ss := sessions()
	golden(t, "goiscsiadm-sessions.json", SessionsJSON(ss, false))
	golden(t, "goiscsiadm-sessions-secrets.json", SessionsJSON(ss, true))
	if got := SessionsJSON(ss, false); strings.Contains(got, "outpass") || strings.Contains(got, "inpass") {
		t.Error("passwords without -S")
	}

	var back struct {
		Sessions []map[string]any `json:"sessions"`
	}
	if err := json.Unmarshal([]byte(SessionsJSON(ss, true)), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Sessions) != len(ss) {
		t.Fatalf("%d sessions back", len(back.Sessions))
	}
	flash := back.Sessions[3]
	if flash["host"] != nil || flash["timeouts"].(map[string]any)["abort"] != nil ||
		flash["negotiated"].(map[string]any)["immediate_data"] != nil || flash["negotiated"].(map[string]any)["max_burst_length"] != nil {
		t.Errorf("unknown values should be null: %v", flash)
	}

	if got := SessionsJSON(nil, false); got != "{\n  \"sessions\": []\n}\n" {
		t.Errorf("no sessions: %q", got)
	}
}

func TestNodesJSON(t *testing.T) {
	golden(t, "goiscsiadm-nodes.json", NodesJSON(sortedNodes))
	if got := NodesJSON(nil); got != "{\n  \"nodes\": []\n}\n" {
		t.Errorf("no nodes: %q", got)
	}
}
