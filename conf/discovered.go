package conf

import "strconv"

// DiscoverySource is where a discovery found targets: node.discovery_type
// (send_targets or isns) and the portal or server it asked
// (node.discovery_address and node.discovery_port).
type DiscoverySource struct {
	Type    string
	Address string
	Port    int
}

// NewDiscoveredNode returns the node record a discovery through src makes of
// target at address:port (portal group tpgt) through iface: cfg's node.*
// defaults (cfg may be nil), iface's settings, src as its discovery source.
// A discovery that finds a stored record keeps that one instead, with its
// settings.
func NewDiscoveredNode(cfg *Config, target, address string, port, tpgt int, iface *Record, src DiscoverySource) *Record {
	r := NewNodeRecord(cfg, target, address, port, tpgt, iface.Get("iface.iscsi_ifacename"))
	r.BindIface(iface)
	r.set("node.discovery_address", src.Address)
	r.set("node.discovery_port", strconv.Itoa(src.Port))
	r.set("node.discovery_type", src.Type)
	return r
}
