package ibft

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/netif"
)

// Boot is one boot target with everything a login to it needs: the target,
// the NIC it is reached through, the initiator, and where the NIC is in Linux.
type Boot struct {
	// Table is the table's name (ibft, iscsi_bootN): a boot session's
	// boot_root.
	Table     string
	Initiator Initiator
	NIC       NIC
	Target    Target
	// Netdev is the Linux network interface of the NIC, found by the NIC's
	// PCI function (the entry's device link), else by its MAC address; ""
	// for an offload table and when neither finds one.
	Netdev string
	// Host is the SCSI host number of an offload table's HBA, -1 for the
	// iBFT.
	Host int
}

// Targets returns a Boot for each target of every table under sysfs (""
// means /sys), in table order, as open-iscsi's fw_get_targets makes its list:
// a target or NIC whose flags are 0 is not in use and is left out. What is
// broken (a table whose files do not parse, a nic-assoc that names no NIC, a
// NIC of the iBFT no network interface matches) is an error naming it; the
// Boots that are whole are returned with it. No table at all is ErrNoTable.
func Targets(sysfs string) ([]Boot, error) {
	if sysfs == "" {
		sysfs = "/sys"
	}
	tables, err := Read(sysfs)
	if errors.Is(err, ErrNoTable) {
		return nil, err
	}
	var boots []Boot
	errs := []error{err}
	for _, t := range tables {
		host := -1
		if t.Offload() {
			n, err := strconv.Atoi(strings.TrimPrefix(t.Name, "iscsi_boot"))
			if err != nil {
				errs = append(errs, fmt.Errorf("ibft: table %s: no SCSI host number in its name", t.Name))
				continue
			}
			host = n
		}
		for _, tg := range t.Targets {
			if tg.Flags == 0 {
				continue
			}
			nic, ok := t.nic(tg.NICAssoc)
			if !ok {
				errs = append(errs, fmt.Errorf("ibft: table %s: %s: nic-assoc %d names no NIC (the table has %d)",
					t.Name, tg.Entry, tg.NICAssoc, len(t.NICs)))
				continue
			}
			if nic.Flags == 0 {
				continue
			}
			b := Boot{Table: t.Name, Initiator: t.Initiator, NIC: nic, Target: tg, Host: host}
			if !t.Offload() {
				b.Netdev, err = netdevOf(sysfs, t, nic)
				errs = append(errs, err)
			}
			boots = append(boots, b)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return boots, err
	}
	if len(boots) == 0 {
		return nil, fmt.Errorf("ibft: no boot target in use in %s (every target or its NIC has flags 0)", tableNames(tables))
	}
	return boots, nil
}

func tableNames(tables []*Table) string {
	var n []string
	for _, t := range tables {
		n = append(n, t.Name)
	}
	return strings.Join(n, ", ")
}

// nic returns the NIC whose index is idx.
func (t *Table) nic(idx int) (NIC, bool) {
	for _, n := range t.NICs {
		if n.Index == idx {
			return n, true
		}
	}
	return NIC{}, false
}

// netdevOf finds the network interface of an iBFT NIC: through the entry's
// device link to its PCI function, whose net directory (device/net/NAME, or
// device/net:NAME on old kernels) names it; else the interface whose MAC
// address is the NIC's (a NIC the kernel could not tie to a PCI function, or
// an offload card whose iSCSI and network functions differ).
func netdevOf(sysfs string, t *Table, n NIC) (string, error) {
	dev := filepath.Join(t.Dir, n.Entry, "device")
	if ents, err := os.ReadDir(filepath.Join(dev, "net")); err == nil && len(ents) > 0 {
		return ents[0].Name(), nil
	}
	if ents, err := os.ReadDir(dev); err == nil {
		for _, e := range ents {
			if name, ok := strings.CutPrefix(e.Name(), "net:"); ok && name != "" {
				return name, nil
			}
		}
	}
	if name, err := netif.ByMAC(sysfs, n.MAC.String()); err == nil {
		return name, nil
	}
	return "", fmt.Errorf("ibft: table %s: %s: no network interface has its PCI function or its MAC address %s",
		t.Name, n.Entry, n.MAC)
}
