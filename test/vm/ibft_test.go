//go:build vm

package vm

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// ibftSpec is what the iBFT the guest's firmware "has" says: one initiator,
// one NIC (a PCI function), one target.
type ibftSpec struct {
	initiator        string
	mac              net.HardwareAddr
	pciBDF           uint16 // bus<<8 | device<<3 | function
	ip, gateway      netip.Addr
	prefix           uint8
	target           string
	targetIP         netip.Addr
	port             uint16
	chapName, secret string
}

// The iBFT 1.03 layout (facts from the specification and the kernel's
// iscsi_ibft): a 48-byte table header (the ACPI header, then reserved bytes),
// then structures, each with a 6-byte header (id, version 1, length, index,
// flags) at an 8-byte boundary, then the strings they point at by offset and
// length. The bytes of the whole table sum to zero.
const (
	ibftHeaderLen    = 48
	ibftControlLen   = 18
	ibftInitiatorLen = 74
	ibftNICLen       = 102
	ibftTargetLen    = 54
	ibftFlags        = 3 // block valid, firmware boot selected
)

// bytes returns the table qemu's -acpitable file= takes.
func (s ibftSpec) bytes() []byte {
	align := func(n int) int { return (n + 7) &^ 7 }
	ctl := ibftHeaderLen
	ini := align(ctl + ibftControlLen)
	nic := align(ini + ibftInitiatorLen)
	tgt := align(nic + ibftNICLen)
	strs := align(tgt + ibftTargetLen)
	b := make([]byte, strs, strs+256)
	le := binary.LittleEndian
	addString := func(at int, v string) {
		if v == "" {
			return
		}
		le.PutUint16(b[at:], uint16(len(v)))
		le.PutUint16(b[at+2:], uint16(len(b)))
		b = append(b, v...)
		b = append(b, 0)
	}
	hdr := func(at int, id byte, length int) {
		b[at], b[at+1] = id, 1
		le.PutUint16(b[at+2:], uint16(length))
		b[at+4], b[at+5] = 0, ibftFlags
	}
	ip16 := func(at int, a netip.Addr) {
		if a.IsValid() {
			c := a.As16() // IPv4 as IPv4-mapped, as the table stores it
			copy(b[at:at+16], c[:])
		}
	}
	copy(b, "iBFT")
	b[8] = 1 // revision
	copy(b[10:16], "GOISCS")
	copy(b[16:24], "GOISCSI ")

	hdr(ctl, 1, ibftControlLen)
	b[ctl+5] = 0 // the control structure has no flags
	le.PutUint16(b[ctl+8:], uint16(ini))
	le.PutUint16(b[ctl+10:], uint16(nic))
	le.PutUint16(b[ctl+12:], uint16(tgt))

	hdr(ini, 2, ibftInitiatorLen)
	addString(ini+70, s.initiator)

	hdr(nic, 3, ibftNICLen)
	ip16(nic+6, s.ip)
	b[nic+22] = s.prefix
	b[nic+23] = 1 // origin: manual
	ip16(nic+24, s.gateway)
	copy(b[nic+90:nic+96], s.mac)
	le.PutUint16(b[nic+96:], s.pciBDF)

	hdr(tgt, 4, ibftTargetLen)
	ip16(tgt+6, s.targetIP)
	le.PutUint16(b[tgt+22:], s.port)
	// LUN 0: the 8 bytes stay zero; nic_assoc 0.
	if s.secret != "" {
		b[tgt+32] = 1 // chap_type: one-way CHAP
	}
	addString(tgt+34, s.target)
	addString(tgt+38, s.chapName)
	addString(tgt+42, s.secret)

	le.PutUint32(b[4:], uint32(len(b)))
	var sum byte
	for _, c := range b {
		sum += c
	}
	b[9] = -sum
	return b
}
