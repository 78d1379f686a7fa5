package main

import (
	"net"
	"os"
)

// sdNotify sends a state line ("READY=1", "STOPPING=1", "STATUS=...") to systemd
// when it started the daemon with Type=notify, and does nothing otherwise. It
// reports whether a notification was sent.
func sdNotify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}
