//go:build !linux

package health

import (
	"errors"
	"syscall"
)

var errNoTCPInfo = errors.New("health: TCP_INFO is read on Linux only")

// ReadTCPInfo returns an error: TCP_INFO in this layout is Linux's.
func ReadTCPInfo(fd int) (TCPInfo, error) { return TCPInfo{}, errNoTCPInfo }

// ReadConnTCPInfo returns an error: TCP_INFO in this layout is Linux's.
func ReadConnTCPInfo(c syscall.Conn) (TCPInfo, error) { return TCPInfo{}, errNoTCPInfo }
