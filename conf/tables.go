package conf

import "sync"

// The key tables below are facts about stock open-iscsi 2.1.8 (usr/idbm.c,
// usr/idbm_fields.h, libopeniscsiusr/idbm.c), checked against records the
// Debian 2.1.8 iscsiadm wrote (testdata/stock-2.1.8-*). Two orders matter:
//
//   - the file order: usr/idbm.c's idbm_recinfo_node, which writes record
//     files. Its iface part starts hwaddress, ipaddress, iscsi_ifacename, ...
//   - the show order: libopeniscsiusr's, which `iscsiadm -m node -o show`
//     prints. Its iface part is the iface record's order (iscsi_ifacename,
//     net_ifacename, ipaddress, ...).
//
// They differ only where iface strings are set, which is why records of
// nodes bound to a configured iface must use the file order to round-trip.

// valType is how stock stores a key's value, which decides what it accepts
// and how it spells it back.
type valType uint8

const (
	tStr  valType = iota // free text (stock truncates; we refuse line breaks)
	tInt                 // int32, printed %d
	tU8                  // uint8
	tU16                 // uint16
	tU32                 // uint32
	tEnum                // one of opts, stored as its index by stock
	tList                // comma list of opts (chap_algs)
)

// section says for which IP family an iface key exists: stock builds the
// iface part of a record with the IPv4 keys or the IPv6 keys, never both.
type section uint8

const (
	secAll section = iota
	secV4
	secV6
)

// keyInfo describes one record key.
type keyInfo struct {
	key  string
	def  string
	typ  valType
	opts []string
	sect section
	// own keys are goiscsi's: stock 2.1.8 refuses a record file holding a
	// key it does not know (and with it every record, in -m node), so they
	// never go into one. DB keeps them beside the record (see
	// DB.SaveNode), once set.
	own bool
}

var (
	yesNo      = []string{"No", "Yes"}
	startups   = []string{"manual", "automatic", "onboot"}
	authMeths  = []string{"None", "CHAP"}
	digests    = []string{"None", "CRC32C", "CRC32C,None", "None,CRC32C"}
	chapAlgs   = []string{"MD5", "SHA1", "SHA256", "SHA3-256"}
	nodeDiscTy = []string{"send_targets", "isns", "offload_send_targets", "slp", "static", "fw"}
	discTypes  = []string{"sendtargets", "isns", "offload_send_targets", "slp", "static", "fw"}
)

func str(k string) keyInfo         { return keyInfo{key: k} }
func strDef(k, def string) keyInfo { return keyInfo{key: k, def: def} }
func num(k, def string) keyInfo    { return keyInfo{key: k, def: def, typ: tInt} }
func u8(k string) keyInfo          { return keyInfo{key: k, def: "0", typ: tU8} }
func u16(k string) keyInfo         { return keyInfo{key: k, def: "0", typ: tU16} }
func u32(k string) keyInfo         { return keyInfo{key: k, def: "0", typ: tU32} }
func enum(k, def string, o []string) keyInfo {
	return keyInfo{key: k, def: def, typ: tEnum, opts: o}
}
func v4(ki keyInfo) keyInfo { ki.sect = secV4; return ki }
func v6(ki keyInfo) keyInfo { ki.sect = secV6; return ki }

// ifaceHead is the start of an iface record (idbm_recinfo_iface), also the
// start of the iface part of `-o show` for nodes.
var ifaceHead = []keyInfo{
	strDef("iface.iscsi_ifacename", "default"),
	str("iface.net_ifacename"),
	str("iface.ipaddress"),
	u8("iface.prefix_len"),
	str("iface.hwaddress"),
	strDef("iface.transport_name", "tcp"),
	str("iface.initiatorname"),
	str("iface.state"),
	u16("iface.vlan_id"),
	u8("iface.vlan_priority"),
	str("iface.vlan_state"),
	num("iface.iface_num", "0"),
	u16("iface.mtu"),
	u16("iface.port"),
}

// ifaceV4 are the IPv4-only iface keys in iface record order; a node record
// file puts subnet_mask and gateway earlier (see nodeIfaceFileHead).
var ifaceV4 = []keyInfo{
	v4(str("iface.bootproto")),
	v4(str("iface.subnet_mask")),
	v4(str("iface.gateway")),
	v4(str("iface.dhcp_alt_client_id_state")),
	v4(str("iface.dhcp_alt_client_id")),
	v4(str("iface.dhcp_dns")),
	v4(str("iface.dhcp_learn_iqn")),
	v4(str("iface.dhcp_req_vendor_id_state")),
	v4(str("iface.dhcp_vendor_id_state")),
	v4(str("iface.dhcp_vendor_id")),
	v4(str("iface.dhcp_slp_da")),
	v4(str("iface.fragmentation")),
	v4(str("iface.gratuitous_arp")),
	v4(str("iface.incoming_forwarding")),
	v4(str("iface.tos_state")),
	v4(u8("iface.tos")),
	v4(u8("iface.ttl")),
}

var ifaceV6 = []keyInfo{
	v6(str("iface.ipv6_autocfg")),
	v6(str("iface.linklocal_autocfg")),
	v6(str("iface.router_autocfg")),
	v6(str("iface.ipv6_linklocal")),
	v6(str("iface.ipv6_router")),
	v6(u8("iface.dup_addr_detect_cnt")),
	v6(u32("iface.flow_label")),
	v6(str("iface.gratuitous_neighbor_adv")),
	v6(u8("iface.hop_limit")),
	v6(str("iface.mld")),
	v6(u32("iface.nd_reachable_tmo")),
	v6(u32("iface.nd_rexmit_time")),
	v6(u32("iface.nd_stale_tmo")),
	v6(u32("iface.router_adv_link_mtu")),
	v6(u8("iface.traffic_class")),
}

var ifaceTail = []keyInfo{
	str("iface.delayed_ack"),
	str("iface.tcp_nagle"),
	str("iface.tcp_wsf_state"),
	u8("iface.tcp_wsf"),
	u8("iface.tcp_timer_scale"),
	str("iface.tcp_timestamp"),
	str("iface.redirect"),
	u16("iface.def_task_mgmt_timeout"),
	str("iface.header_digest"),
	str("iface.data_digest"),
	str("iface.immediate_data"),
	str("iface.initial_r2t"),
	str("iface.data_seq_inorder"),
	str("iface.data_pdu_inorder"),
	u8("iface.erl"),
	u32("iface.max_receive_data_len"),
	u32("iface.first_burst_len"),
	u16("iface.max_outstanding_r2t"),
	u32("iface.max_burst_len"),
	str("iface.chap_auth"),
	str("iface.bidi_chap"),
	str("iface.strict_login_compliance"),
	str("iface.discovery_auth"),
	str("iface.discovery_logout"),
}

// nodeHead precedes the iface part of a node record.
var nodeHead = []keyInfo{
	str("node.name"),
	num("node.tpgt", "-1"),
	enum("node.startup", "manual", startups),
	enum("node.leading_login", "No", yesNo),
}

// nodeTail follows the iface part. node.session.autoscan_en is goiscsi's own,
// shown next to node.session.scan.
var nodeTail = []keyInfo{
	str("node.discovery_address"),
	num("node.discovery_port", "0"),
	enum("node.discovery_type", "static", nodeDiscTy),
	num("node.session.initial_cmdsn", "0"),
	num("node.session.initial_login_retry_max", "4"),
	num("node.session.xmit_thread_priority", "-20"),
	num("node.session.cmds_max", "128"),
	num("node.session.queue_depth", "32"),
	num("node.session.nr_sessions", "1"),
	enum("node.session.auth.authmethod", "None", authMeths),
	str("node.session.auth.username"),
	str("node.session.auth.password"),
	str("node.session.auth.username_in"),
	str("node.session.auth.password_in"),
	{key: "node.session.auth.chap_algs", def: "MD5", typ: tList, opts: chapAlgs},
	num("node.session.timeo.replacement_timeout", "120"),
	num("node.session.err_timeo.abort_timeout", "15"),
	num("node.session.err_timeo.lu_reset_timeout", "30"),
	num("node.session.err_timeo.tgt_reset_timeout", "30"),
	num("node.session.err_timeo.host_reset_timeout", "60"),
	enum("node.session.iscsi.FastAbort", "Yes", yesNo),
	enum("node.session.iscsi.InitialR2T", "No", yesNo),
	enum("node.session.iscsi.ImmediateData", "Yes", yesNo),
	num("node.session.iscsi.FirstBurstLength", "262144"),
	num("node.session.iscsi.MaxBurstLength", "16776192"),
	num("node.session.iscsi.DefaultTime2Retain", "0"),
	num("node.session.iscsi.DefaultTime2Wait", "2"),
	num("node.session.iscsi.MaxConnections", "1"),
	num("node.session.iscsi.MaxOutstandingR2T", "1"),
	num("node.session.iscsi.ERL", "0"),
	enum("node.session.scan", "auto", []string{"manual", "auto"}),
	{key: "node.session.autoscan_en", def: "Yes", typ: tEnum, opts: yesNo, own: true},
	num("node.session.reopen_max", "0"),
	// node.conn[N]: stock 2.1.8 is built with ISCSI_CONN_MAX 1, so only
	// conn[0] exists.
	str("node.conn[0].address"),
	num("node.conn[0].port", "3260"),
	enum("node.conn[0].startup", "manual", startups),
	num("node.conn[0].tcp.window_size", "524288"),
	num("node.conn[0].tcp.type_of_service", "0"),
	num("node.conn[0].timeo.logout_timeout", "15"),
	num("node.conn[0].timeo.login_timeout", "30"),
	num("node.conn[0].timeo.auth_timeout", "45"),
	num("node.conn[0].timeo.noop_out_interval", "5"),
	num("node.conn[0].timeo.noop_out_timeout", "5"),
	num("node.conn[0].iscsi.MaxXmitDataSegmentLength", "0"),
	num("node.conn[0].iscsi.MaxRecvDataSegmentLength", "262144"),
	enum("node.conn[0].iscsi.HeaderDigest", "None", digests),
	enum("node.conn[0].iscsi.DataDigest", "None", digests),
	enum("node.conn[0].iscsi.IFMarker", "No", yesNo),
	enum("node.conn[0].iscsi.OFMarker", "No", yesNo),
}

// nodeIfaceFileHead is the order usr/idbm.c writes the first iface keys of a
// node record in; the IPv4 section then lacks subnet_mask and gateway.
var nodeIfaceFileHead = []string{
	"iface.hwaddress", "iface.ipaddress", "iface.iscsi_ifacename", "iface.net_ifacename",
	"iface.gateway", "iface.subnet_mask", "iface.prefix_len", "iface.transport_name",
	"iface.initiatorname", "iface.state", "iface.vlan_id", "iface.vlan_priority",
	"iface.vlan_state", "iface.iface_num", "iface.mtu", "iface.port",
}

// discoveryTable is the SendTargets discovery record (send_targets/<portal>/st_config)
// in stock 2.1.8's order (file and show alike), with its built-in defaults.
var discoveryTable = []keyInfo{
	enum("discovery.startup", "manual", []string{"manual", "automatic"}),
	enum("discovery.type", "sendtargets", discTypes),
	str("discovery.sendtargets.address"),
	num("discovery.sendtargets.port", "3260"),
	enum("discovery.sendtargets.auth.authmethod", "None", authMeths),
	str("discovery.sendtargets.auth.username"),
	str("discovery.sendtargets.auth.password"),
	str("discovery.sendtargets.auth.username_in"),
	str("discovery.sendtargets.auth.password_in"),
	// Stock reuses the node key name for the discovery CHAP algorithms.
	{key: "node.session.auth.chap_algs", def: "MD5", typ: tList, opts: chapAlgs},
	num("discovery.sendtargets.timeo.login_timeout", "15"),
	enum("discovery.sendtargets.use_discoveryd", "No", yesNo),
	num("discovery.sendtargets.discoveryd_poll_inval", "30"),
	num("discovery.sendtargets.reopen_max", "5"),
	num("discovery.sendtargets.timeo.auth_timeout", "45"),
	num("discovery.sendtargets.timeo.active_timeout", "30"),
	num("discovery.sendtargets.iscsi.MaxRecvDataSegmentLength", "32768"),
}

// isnsDiscoveryTable is the iSNS discovery record (isns/<server>/isns_config)
// in stock 2.1.8's order. Stock names the server's address and port with the
// SendTargets keys (usr/idbm_fields.h DISC_ISNS_ADDR and DISC_ISNS_PORT), and
// a record made without iscsid.conf's discovery.isns.* keys polls never (-1):
// iscsid rediscovers on State Change Notifications only.
var isnsDiscoveryTable = []keyInfo{
	enum("discovery.startup", "manual", []string{"manual", "automatic"}),
	enum("discovery.type", "isns", discTypes),
	str("discovery.sendtargets.address"),
	num("discovery.sendtargets.port", "3205"),
	enum("discovery.isns.use_discoveryd", "No", yesNo),
	num("discovery.isns.discoveryd_poll_inval", "-1"),
}

// layout is one record kind's keys: what they are, and the orders in which
// files and `-o show` list them.
type layout struct {
	info map[string]*keyInfo
	file []string // file order, every section
	show []string // show order, every section
}

func cat(parts ...[]keyInfo) []keyInfo {
	var out []keyInfo
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func names(t []keyInfo) []string {
	out := make([]string, len(t))
	for i := range t {
		out[i] = t[i].key
	}
	return out
}

func newLayout(show []keyInfo, file []string) *layout {
	l := &layout{info: map[string]*keyInfo{}, show: names(show), file: file}
	for i := range show {
		l.info[show[i].key] = &show[i]
	}
	if l.file == nil {
		l.file = l.show
	}
	return l
}

// The layouts are built on first use, not at init: their maps took 0.6-6 ms
// of every goiscsiadm command's start under qemu TCG, and listings never touch
// a record.
var (
	ifaceLayout     = sync.OnceValue(func() *layout { return newLayout(cat(ifaceHead, ifaceV4, ifaceV6, ifaceTail), nil) })
	discoveryLayout = sync.OnceValue(func() *layout { return newLayout(discoveryTable, nil) })
	isnsLayout      = sync.OnceValue(func() *layout { return newLayout(isnsDiscoveryTable, nil) })
	nodeLayout      = sync.OnceValue(func() *layout {
		show := cat(nodeHead, ifaceHead, ifaceV4, ifaceV6, ifaceTail, nodeTail)
		var file []string
		file = append(file, names(nodeHead)...)
		file = append(file, nodeIfaceFileHead...)
		for _, k := range ifaceV4 {
			if k.key != "iface.subnet_mask" && k.key != "iface.gateway" {
				file = append(file, k.key)
			}
		}
		file = append(file, names(ifaceV6)...)
		file = append(file, names(ifaceTail)...)
		file = append(file, names(nodeTail)...)
		return newLayout(show, file)
	})
)
