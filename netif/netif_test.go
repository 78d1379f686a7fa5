package netif

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeNet makes sysfsRoot/class/net/NAME/address for each name → MAC.
func fakeNet(t *testing.T, macs map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, mac := range macs {
		dir := filepath.Join(root, "class", "net", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "address"), []byte(mac+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestNetdev(t *testing.T) {
	root := fakeNet(t, map[string]string{"lo": "00:00:00:00:00:00", "vethA": "52:54:00:aa:00:01", "vethB": "52:54:00:aa:00:02"})
	for _, tc := range []struct {
		name    string
		b       Binding
		want    string
		wantErr string
	}{
		{"unbound", Binding{}, "", ""},
		{"defaults", Binding{Transport: "tcp", HWAddress: "default", Netdev: "default", IPAddress: "default"}, "", ""},
		{"netdev", Binding{Netdev: "vethA"}, "vethA", ""},
		{"hwaddress", Binding{HWAddress: "52:54:00:AA:00:02"}, "vethB", ""},
		{"hwaddress wins over netdev", Binding{HWAddress: "52:54:00:aa:00:02", Netdev: "vethA"}, "vethB", ""},
		{"netdev wins over ipaddress", Binding{Netdev: "vethA", IPAddress: "10.1.0.1"}, "vethA", ""},
		{"unknown MAC", Binding{HWAddress: "52:54:00:aa:00:09"}, "", "Cannot match 52:54:00:aa:00:09 to net/scsi interface"},
		{"bad MAC", Binding{HWAddress: "zz"}, "", `"zz" is not a MAC address`},
		{"ipaddress alone", Binding{IPAddress: "10.1.0.1"}, "", "Cannot bind 10.1.0.1 to net/scsi interface. This is not supported with software iSCSI (iscsi_tcp)."},
		{"other transport binds elsewhere", Binding{Transport: "iser", IPAddress: "10.1.0.1"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Netdev(root, tc.b)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Netdev = %q, %v; want error containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Netdev = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestBindErrorIsTyped(t *testing.T) {
	root := fakeNet(t, map[string]string{"vethA": "52:54:00:aa:00:01"})
	for _, b := range []Binding{{IPAddress: "10.1.0.1"}, {HWAddress: "52:54:00:aa:00:09"}} {
		_, err := Netdev(root, b)
		var be *BindError
		if !errors.As(err, &be) || be.IPAddress != (b.IPAddress != "") {
			t.Errorf("Netdev(%+v) = %v, want a *BindError", b, err)
		}
	}
}

func TestByMACWithoutSysfs(t *testing.T) {
	if _, err := ByMAC(filepath.Join(t.TempDir(), "none"), "52:54:00:aa:00:01"); err == nil {
		t.Fatal("ByMAC without class/net succeeded")
	}
}
