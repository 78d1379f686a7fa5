// Package isns speaks the Internet Storage Name Service protocol (iSNSP,
// RFC 4171) as an iSCSI initiator does: register with a name server, ask it
// which targets this initiator may see, and hear about targets coming and going
// through State Change Notifications.
//
// The package has three layers:
//
//   - the codec: the 12-byte PDU [Header], attributes as tag-length-value
//     ([Attr], with typed constructors and accessors for the tags an initiator
//     uses), whole messages ([Message]: source, message key, delimiter,
//     operating attributes, or status and attributes for responses), the split
//     of a message into PDUs and their reassembly ([Reader]), and the grouping
//     of a response's attributes into objects ([ParseObjects]);
//   - the [Client]: one TCP connection to the server (port 3205 by default),
//     transaction IDs matched to responses, a context and a timeout on every
//     call, and the calls an initiator makes ([Client.RegisterInitiator],
//     [Client.QueryTargets], [Client.DiscoverTargets], [Client.Deregister],
//     [Client.RegisterSCN], [Client.Refresh]);
//   - the [SCNListener]: the port the server connects back to, over TCP or UDP,
//     to deliver State Change Notifications (answered with SCNRsp and turned
//     into [Event]s) and Entity Status Inquiries (answered with ESIRsp).
//
// What the initiator sends mirrors stock open-iscsi: iscsiadm's discovery
// queries with Node Type = target as the key and asks for the iSCSI Name, Node
// Type, portal and portal-group attributes, registering a bare initiator node
// only when the server answers Source Unknown; iscsid's discovery daemon
// registers an entity, a portal carrying its SCN port and its initiator nodes
// with the replace flag, then an SCN registration with the
// updated/added/removed/target-and-self-only bitmap. open-isns's isnsd
// delivers SCNs by connecting to the registered portal's IP address and SCN
// port (never on the client's own connection), and sends ESIs only to portals
// that registered an ESI port.
//
// Nothing here panics on outside bytes: malformed input returns an [*Error]
// whose Err is one of the Err* sentinels; a response with a non-zero status
// returns a [*StatusError], which errors.Is matches against the [Status]
// constants.
package isns
