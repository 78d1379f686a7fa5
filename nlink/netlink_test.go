package nlink

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadTransport(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "class", "iscsi_transport", "tcp")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "handle"), []byte("18446612682266558464\n"), 0o444)
	os.WriteFile(filepath.Join(dir, "caps"), []byte("0x39\n"), 0o444)
	info, err := ReadTransport(root, "")
	if err != nil || info.Handle != 18446612682266558464 || info.Caps != 0x39 || info.Caps&CapHdrDigest == 0 {
		t.Fatalf("%+v %v", info, err)
	}
	os.WriteFile(filepath.Join(dir, "caps"), []byte("lots\n"), 0o444)
	if _, err := ReadTransport(root, ""); err == nil || !strings.Contains(err.Error(), "lots") {
		t.Errorf("bad caps: %v", err)
	}
	_, err = ReadTransport(root, "iser")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "iser") {
		t.Errorf("missing transport: %v", err)
	}
}

// On a kernel without iSCSI support (the development machines) Dial fails with
// a message that says what is missing, instead of hanging or panicking.
func TestDialWithoutISCSIKernel(t *testing.T) {
	if _, err := os.Stat("/sys/class/iscsi_transport/tcp"); err == nil {
		t.Skip("this kernel has iscsi_tcp")
	}
	_, err := Dial(DialOptions{})
	if err == nil || !strings.Contains(err.Error(), "iscsi_tcp") {
		t.Fatalf("Dial: %v", err)
	}
	if _, err := dialNetlink("/sys"); err == nil {
		t.Skip("NETLINK_ISCSI exists here")
	} else if !strings.Contains(err.Error(), "NETLINK_ISCSI") {
		t.Fatalf("dialNetlink: %v", err)
	}
}
