package isns

import (
	"net/netip"
	"strconv"
)

// ObjectType is the kind of iSNS object a run of attributes describes.
type ObjectType uint8

// Object types of RFC 4171 §3.
const (
	ObjectUnknown     ObjectType = iota // attributes of no known object
	ObjectEntity                        // Network Entity (tags 1-15, 385-512)
	ObjectPortal                        // Portal (16-31, 513-640)
	ObjectNode                          // iSCSI Storage Node (32-47, 641-768)
	ObjectPortalGroup                   // Portal Group (48-63)
	ObjectFCPort                        // FC Port (64-95)
	ObjectFCNode                        // FC Node (96-127)
	ObjectDDSet                         // Discovery Domain Set (2049-2064, 1281-1536)
	ObjectDD                            // Discovery Domain (2065-2079, 1024-1280)
	ObjectServer                        // server attributes (128-384)
)

func (t ObjectType) String() string {
	switch t {
	case ObjectEntity:
		return "Network Entity"
	case ObjectPortal:
		return "Portal"
	case ObjectNode:
		return "iSCSI Storage Node"
	case ObjectPortalGroup:
		return "Portal Group"
	case ObjectFCPort:
		return "FC Port"
	case ObjectFCNode:
		return "FC Node"
	case ObjectDDSet:
		return "Discovery Domain Set"
	case ObjectDD:
		return "Discovery Domain"
	case ObjectServer:
		return "Server"
	}
	return "unknown object"
}

// objectOf returns the object type whose tag range holds t (RFC 4171 §6.1,
// including the vendor-specific ranges).
func objectOf(t Tag) ObjectType {
	switch {
	case t >= 1 && t <= 15, t >= 385 && t <= 512:
		return ObjectEntity
	case t >= 16 && t <= 31, t >= 513 && t <= 640:
		return ObjectPortal
	case t >= 32 && t <= 47, t >= 641 && t <= 768:
		return ObjectNode
	case t >= 48 && t <= 63:
		return ObjectPortalGroup
	case t >= 64 && t <= 95:
		return ObjectFCPort
	case t >= 96 && t <= 127:
		return ObjectFCNode
	case t >= 128 && t <= 384:
		return ObjectServer
	case t >= 1024 && t <= 1280, t >= 2065 && t <= 2079:
		return ObjectDD
	case t >= 1281 && t <= 1536, t >= 2049 && t <= 2064:
		return ObjectDDSet
	}
	return ObjectUnknown
}

// startsObject reports whether t is the first key attribute of its object
// type, so that it begins a new object even right after one of its kind.
func startsObject(t Tag) bool {
	switch t {
	case TagEntityIdentifier, TagPortalIPAddress, TagISCSIName, TagPGISCSIName,
		TagFCPortNameWWPN, TagFCNodeNameWWNN, TagDDSetID, TagDDID:
		return true
	}
	return false
}

// Object is one object of a response's operating attributes.
type Object struct {
	Type  ObjectType
	Attrs Attrs
}

// ParseObjects groups operating attributes into objects as RFC 4171 §5.6.4
// orders them: an object begins at its first key attribute (Entity
// Identifier, Portal IP Address, iSCSI Name, PG iSCSI Name, ...) or at any
// attribute belonging to another object type (so a PG Tag right after a
// Portal or a Node begins a Portal Group, as §5.6.5.1 allows), and takes
// every following attribute of its own type. A Delimiter in the list is
// skipped. It never fails; unknown tags become ObjectUnknown objects.
func ParseObjects(attrs Attrs) []Object {
	var out []Object
	for _, a := range attrs {
		if a.Tag == TagDelimiter {
			continue
		}
		t := objectOf(a.Tag)
		if n := len(out); n > 0 && out[n-1].Type == t {
			prev := &out[n-1]
			_, hasName := prev.Attrs.Get(TagPGISCSIName)
			// An inline PG begun by its PG Tag takes the PG iSCSI Name
			// that follows rather than starting another PG.
			inlinePG := t == ObjectPortalGroup && a.Tag == TagPGISCSIName && !hasName
			if !startsObject(a.Tag) || inlinePG {
				prev.Attrs = append(prev.Attrs, a)
				continue
			}
		}
		out = append(out, Object{Type: t, Attrs: Attrs{a}})
	}
	return out
}

// Target is an iSCSI target a query returned, with the portals through which
// this initiator may reach it.
type Target struct {
	Name    string
	Alias   string // "" unless the server returned one
	Entity  string // Entity Identifier of the entity the target belongs to, if returned
	Portals []TargetPortal
}

// TargetPortal is one portal group of a target: where to connect and the
// target portal group tag the login will report.
type TargetPortal struct {
	Address netip.Addr
	Port    uint16
	PGT     uint32
}

// String formats the portal as iscsiadm prints a discovered portal (before
// the target name): "10.0.0.1:3260,1", or "[fd00::1]:3260,1" for IPv6.
func (p TargetPortal) String() string {
	return netip.AddrPortFrom(p.Address, p.Port).String() + "," + strconv.FormatUint(uint64(p.PGT), 10)
}

// Targets extracts the targets from a DevAttrQry response's operating
// attributes: each iSCSI Storage Node whose Node Type has the target bit
// becomes a Target, and each Portal Group (PG iSCSI Name, PG Portal IP Addr,
// PG Portal TCP/UDP Port, PG Tag) adds a portal to its target, as stock
// open-iscsi builds its node records. PGs with a nil PG Tag (the RFC's "no
// access through this portal") or missing any of the four are skipped; a PG
// whose node was not returned still yields its target (stock needs only the
// PG). Order follows the response.
func Targets(attrs Attrs) []Target {
	var out []Target
	index := map[string]int{}
	get := func(name string) *Target {
		i, ok := index[name]
		if !ok {
			i = len(out)
			index[name] = i
			out = append(out, Target{Name: name})
		}
		return &out[i]
	}
	entity := ""
	for _, o := range ParseObjects(attrs) {
		switch o.Type {
		case ObjectEntity:
			entity = o.Attrs.String(TagEntityIdentifier)
		case ObjectNode:
			name := o.Attrs.String(TagISCSIName)
			typ, ok := o.Attrs.Uint32(TagISCSINodeType)
			if name == "" || !ok || typ&NodeTarget == 0 {
				continue
			}
			t := get(name)
			if alias := o.Attrs.String(TagISCSIAlias); alias != "" {
				t.Alias = alias
			}
			if entity != "" {
				t.Entity = entity
			}
		case ObjectPortalGroup:
			name := o.Attrs.String(TagPGISCSIName)
			ipa, ok1 := o.Attrs.Get(TagPGPortalIPAddr)
			pa, ok2 := o.Attrs.Get(TagPGPortalPort)
			pgt, ok3 := o.Attrs.Uint32(TagPGTag)
			if name == "" || !ok1 || !ok2 || !ok3 {
				continue
			}
			ip, err := ipa.AsIP()
			if err != nil {
				continue
			}
			port, _, err := pa.AsPort()
			if err != nil {
				continue
			}
			t := get(name)
			p := TargetPortal{Address: ip, Port: port, PGT: pgt}
			dup := false
			for _, q := range t.Portals {
				dup = dup || q == p
			}
			if !dup {
				t.Portals = append(t.Portals, p)
			}
		}
	}
	return out
}

// iSCSI Node Type bits (RFC 4171 §6.4.2).
const (
	NodeTarget    uint32 = 1 << 0
	NodeInitiator uint32 = 1 << 1
	NodeControl   uint32 = 1 << 2
)

// EntityProtocolISCSI is the Entity Protocol value of an iSCSI entity
// (RFC 4171 §6.2.2; 1 is "no protocol", 3 iFCP).
const EntityProtocolISCSI uint32 = 2
