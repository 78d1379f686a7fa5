package initiator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/goiscsi/goiscsi/conf"
	"github.com/goiscsi/goiscsi/ibft"
	"github.com/goiscsi/goiscsi/iscsierr"
)

// FirmwareTargets returns the boot targets the firmware's tables describe
// (package ibft over the Client's sysfs). No table, or no target in use, is
// an error with code NoObjsFound, as iscsiadm -m fw answers. A table that is
// partly broken gives the whole targets together with the error naming what
// is broken; warn, if not nil, is told of it, and the error is then nil.
func (c *Client) FirmwareTargets(warn func(error)) ([]ibft.Boot, error) {
	boots, err := ibft.Targets(c.sysfs())
	switch {
	case errors.Is(err, ibft.ErrNoTable):
		return nil, iscsierr.Errorf(iscsierr.NoObjsFound, "Could not get list of targets from firmware. (err 21)")
	case err != nil && len(boots) == 0:
		return nil, iscsierr.Errorf(iscsierr.NoObjsFound, "Could not get list of targets from firmware: %w", err)
	case err != nil && warn != nil:
		warn(err)
	case err != nil:
		return boots, iscsierr.Errorf(iscsierr.NoObjsFound, "%v", err)
	}
	return boots, nil
}

// FirmwareRecord returns the node record of boot target b through iface (""
// means default) as stock 2.1.8 makes it from a boot table
// (idbm_create_rec_from_boot_context): the defaults and iscsid.conf's node.*
// keys, TPGT 1, the iface's settings, the table's initiator name unless the
// iface has its own, the table's CHAP credentials (authmethod CHAP when it has
// a secret: stock logs in with CHAP whenever a password is set). It is not
// saved.
func (c *Client) FirmwareRecord(b ibft.Boot, iface string) (*conf.Record, error) {
	r, err := c.NewNode(b.Target.Name, Portal{Address: ibft.Addr(b.Target.IP), Port: b.Target.Port, TPGT: 1}, iface)
	if err != nil {
		return nil, err
	}
	authmethod, iname := "", ""
	if b.Target.CHAPSecret != "" || b.Target.RevCHAPSecret != "" {
		authmethod = "CHAP"
	}
	if r.Get("iface.initiatorname") == "" {
		iname = b.Initiator.Name
	}
	for _, kv := range [][2]string{
		{"iface.initiatorname", iname},
		{"node.session.auth.authmethod", authmethod},
		{"node.session.auth.username", b.Target.CHAPName},
		{"node.session.auth.password", b.Target.CHAPSecret},
		{"node.session.auth.username_in", b.Target.RevCHAPName},
		{"node.session.auth.password_in", b.Target.RevCHAPSecret},
	} {
		if kv[1] == "" {
			continue
		}
		if err := r.Set(kv[0], kv[1]); err != nil {
			return nil, iscsierr.Errorf(iscsierr.Inval, "boot table %s %s: %v", b.Table, b.Target.Entry, err)
		}
	}
	return r, nil
}

// bootLoginDefaults are what stock gives a login to a boot target unless told
// otherwise (iscsiadm's fill_in_default_fw_values, iscsistart's
// apply_params): a boot waits longer for its target (30 login timeouts; the
// network may still be coming up), the kernel sends no NOP-Outs (nothing
// would answer a failure before the daemon runs), and every LUN is scanned.
var bootLoginDefaults = [][2]string{
	{"node.session.initial_login_retry_max", "30"},
	{"node.conn[0].timeo.noop_out_interval", "0"},
	{"node.conn[0].timeo.noop_out_timeout", "0"},
	{"node.session.scan", "auto"},
}

// ApplyBootDefaults gives r what a login to a boot target uses: the boot
// login defaults, then params (iscsiadm -m fw -l's -n/-v, iscsistart's -P
// NAME=VALUE), which win.
func ApplyBootDefaults(r *conf.Record, params [][2]string) error {
	for _, p := range append(append([][2]string{}, bootLoginDefaults...), params...) {
		if err := r.Set(p[0], p[1]); err != nil {
			return iscsierr.Errorf(iscsierr.Inval, "%v", err)
		}
	}
	return nil
}

// FirmwareLoginRecord is FirmwareRecord with ApplyBootDefaults on top
// (iscsiadm -m fw -l). Params may not change the iface's network device,
// hardware address or transport: the table's are used, as stock insists.
func (c *Client) FirmwareLoginRecord(b ibft.Boot, params [][2]string) (*conf.Record, error) {
	for _, p := range params {
		switch p[0] {
		case "iface.net_ifacename", "iface.hwaddress", "iface.transport_name":
			return nil, iscsierr.Errorf(iscsierr.Inval, "Cannot override interface parameters for firmware logins")
		}
	}
	r, err := c.FirmwareRecord(b, "default")
	if err != nil {
		return nil, err
	}
	if err := ApplyBootDefaults(r, params); err != nil {
		return nil, err
	}
	return r, nil
}

// FirmwareDiscoverOptions say what DiscoverFirmware does with the node
// database (iscsiadm's -o new, update, delete; stock does all three when
// none is given).
type FirmwareDiscoverOptions struct {
	// Ifaces are the ifaces the records are bound to, one record per
	// target and iface; empty means default.
	Ifaces []string
	// New stores the records that do not exist yet; they start as
	// iscsid.conf says (node.startup).
	New bool
	// Update writes the records that exist anew; they start onboot from
	// then on, so a later -L or -U leaves the boot session alone.
	Update bool
	// DeleteStale deletes the fw records of targets the table no longer
	// has; one a session uses stays.
	DeleteStale bool
}

// DiscoverFirmware makes a node record with node.discovery_type fw for each
// boot target and iface (iscsiadm -m discovery -t fw [-I iface]...) and stores
// it as opts say, as stock does. An iface that cannot be read is told to
// warn and left out (stock's words); none left, or none given, means
// default. The records are returned stored or not.
func (c *Client) DiscoverFirmware(ctx context.Context, opts FirmwareDiscoverOptions, warn func(error)) ([]*conf.Record, error) {
	boots, err := c.FirmwareTargets(warn)
	if err != nil {
		return nil, err
	}
	var bound []string
	for _, n := range opts.Ifaces {
		if _, err := c.Iface(n); err != nil {
			if warn != nil {
				warn(iscsierr.Errorf(iscsierr.NoMem, "Could not read iface info for %s. Make sure an iface config with the file name and iface.iscsi_ifacename %s is in %s.",
					n, n, filepath.Join(c.root(), "ifaces")))
			}
			continue
		}
		bound = append(bound, n)
	}
	if len(bound) == 0 {
		bound = []string{"default"}
	}
	var recs []*conf.Record
	found := map[nodeKey]bool{}
	for _, b := range boots {
		for _, iface := range bound {
			r, err := c.discoverFirmwareRecord(b, iface, opts)
			if err != nil {
				return nil, err
			}
			found[keyOf(r.ID())] = true
			recs = append(recs, r)
		}
	}
	if opts.DeleteStale {
		c.deleteStaleFirmware(ctx, found)
	}
	return recs, ctx.Err()
}

// discoverFirmwareRecord makes the fw node record of b through iface and
// stores it as opts say.
func (c *Client) discoverFirmwareRecord(b ibft.Boot, iface string, opts FirmwareDiscoverOptions) (*conf.Record, error) {
	r, err := c.FirmwareRecord(b, iface)
	if err != nil {
		return nil, err
	}
	id := r.ID()
	existing, _ := c.DB().FindNodes(id.Target, id.Address, id.Port, id.Iface)
	kv := [][2]string{{"node.discovery_type", "fw"}, {"node.discovery_address", ""}, {"node.discovery_port", "0"}}
	if len(existing) > 0 {
		kv = append(kv, [2]string{"node.startup", "onboot"}, [2]string{"node.conn[0].startup", "onboot"})
	}
	for _, k := range kv {
		if err := r.Set(k[0], k[1]); err != nil {
			return nil, iscsierr.Errorf(iscsierr.IDBM, "%v", err)
		}
	}
	if len(existing) > 0 && !opts.Update || len(existing) == 0 && !opts.New {
		return r, nil
	}
	if err := c.SaveNode(r); err != nil {
		return nil, err
	}
	return r, nil
}

// deleteStaleFirmware deletes the fw node records not in found (stock's
// delete_stale_rec for firmware discovery); one a session uses stays.
func (c *Client) deleteStaleFirmware(ctx context.Context, found map[nodeKey]bool) {
	recs, _ := c.DB().Nodes()
	var counts map[conf.NodeID]int
	for _, r := range recs {
		if r.Get("node.discovery_type") != "fw" || found[keyOf(r.ID())] {
			continue
		}
		if counts == nil {
			var err error
			if counts, err = c.SessionCounts(ctx); err != nil {
				return // deleting blind could take a live session's record
			}
		}
		c.deleteNode(r, counts)
	}
}

// FirmwareText is boot target b as iscsiadm -m fw and iscsistart -f print
// it (stock 2.1.8's fw_print_entry): one "key = value" block from "# BEGIN
// RECORD 2.1.8" to "# END RECORD" with the iface keys of the initiator and
// NIC, then the node keys of the target; values the table does not show are
// left out. CHAP secrets show as ******** unless showSecrets: stock prints
// them, but a secret is not printed unless asked for.
func (c *Client) FirmwareText(b ibft.Boot, showSecrets bool) string {
	var s strings.Builder
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&s, "%s = %s\n", k, v)
		}
	}
	secret := func(v string) string {
		if v == "" || showSecrets {
			return v
		}
		return "********"
	}
	n, t := b.NIC, b.Target
	s.WriteString("# BEGIN RECORD 2.1.8\n") // the version is stock's, as in conf's record files
	kv("iface.initiatorname", b.Initiator.Name)
	kv("iface.transport_name", c.firmwareTransport(b))
	kv("iface.hwaddress", n.MAC.String())
	bootproto := "STATIC"
	if n.DHCPUsed() {
		bootproto = "DHCP"
	}
	kv("iface.bootproto", bootproto)
	kv("iface.ipaddress", ibft.Addr(n.IP))
	if n.PrefixLen != 0 {
		kv("iface.prefix_len", strconv.Itoa(n.PrefixLen))
	}
	kv("iface.subnet_mask", ibft.Addr(n.SubnetMask))
	kv("iface.gateway", ibft.Addr(n.Gateway))
	kv("iface.primary_dns", ibft.Addr(n.PrimaryDNS))
	kv("iface.secondary_dns", ibft.Addr(n.SecondaryDNS))
	if n.VLAN >= 0 {
		kv("iface.vlan_id", strconv.Itoa(n.VLAN))
	}
	kv("iface.net_ifacename", b.Netdev)
	kv("node.name", t.Name)
	kv("node.conn[0].address", ibft.Addr(t.IP))
	kv("node.conn[0].port", strconv.Itoa(t.Port))
	kv("node.session.auth.username", t.CHAPName)
	kv("node.session.auth.password", secret(t.CHAPSecret))
	kv("node.session.auth.username_in", t.RevCHAPName)
	kv("node.session.auth.password_in", secret(t.RevCHAPSecret))
	kv("node.boot_lun", t.LUN)
	s.WriteString("# END RECORD\n")
	return s.String()
}

// firmwareTransport is the iSCSI transport of a boot target: tcp through a
// NIC of the iBFT, the HBA's driver (its SCSI host's proc_name) for an
// offload table.
func (c *Client) firmwareTransport(b ibft.Boot) string {
	if b.Host < 0 {
		return "tcp"
	}
	name, err := os.ReadFile(filepath.Join(c.sysfs(), "class", "scsi_host", "host"+strconv.Itoa(b.Host), "proc_name"))
	if err != nil {
		return "tcp"
	}
	return strings.TrimSpace(string(name))
}
