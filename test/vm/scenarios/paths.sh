# Paths (issue 25): sessions bound to NICs, several sessions per node, -W,
# an iface bound by IP address alone, IPv6. In one boot, stock (iscsid,
# iscsiadm), goiscsi (goiscsid, goiscsiadm), then stock's iscsiadm with
# goiscsid ("stockadm"), each on an empty node database, the same commands:
# - two NICs: veth pairs vethA 10.1.0.1 <-> 10.1.0.2 and vethB 10.2.0.1 <->
#   10.2.0.2 into a network namespace where LIO listens on both (vm-recipe.md);
#   iface eth-a bound by net_ifacename to vethA, eth-b by hwaddress to vethB;
#   discovery through both (portal x iface records); eth-a to portal A, eth-b to
#   portal B, and eth-a to portal B (the binding must beat the route); the
#   connections in ss, and each session's write counted on the veths;
# - nr_sessions 2 to one portal, -m session -r SID -o new (a third), -r SID -u
#   (exactly that one), the node's logout (the rest); nr_sessions 4; -W;
# - an iface bound only by iface.ipaddress: discovery and login refused;
# - IPv6: LIO on [::1]:3260, discovery, login, data, -P 1, logout.
T=iqn.2003-01.org.example:paths
TN=iqn.2003-01.org.example:paths-nr
T6=iqn.2003-01.org.example:paths-v6
IP=/bin/ip # iproute2's: busybox's cannot make veth pairs

kmod_load veth
kmod_load dm_service_time
kmod_load scsi_dh_alua
$IP netns add tgt || fail "ip netns add tgt"
for _n in A B; do
	_net=$([ $_n = A ] && echo 1 || echo 2)
	$IP link add veth$_n type veth peer name veth$_n-t || fail "veth$_n"
	$IP link set veth$_n-t netns tgt
	$IP addr add 10.$_net.0.1/24 dev veth$_n
	$IP link set veth$_n up
	$IP -n tgt addr add 10.$_net.0.2/24 dev veth$_n-t
	$IP -n tgt link set veth$_n-t up
done
$IP -n tgt link set lo up
# LIO's listening socket lives in the namespace of whoever makes the portal.
lio_target $T 127.0.0.1:3262 1 64
for _p in 10.1.0.2:3260 10.2.0.2:3260; do
	nsenter --net=/run/netns/tgt mkdir "$(lio_tpg $T)/np/$_p" || fail "lio: portal $_p in the namespace"
done
rmdir "$(lio_tpg $T)/np/127.0.0.1:3262"
lio_target $TN 127.0.0.1:3260 1 16
lio_target $T6 "[::1]:3260" 1 16
have_addr() { $IP -n tgt addr show dev vethB-t | grep -q 'inet 10.2.0.2' && ping -c 1 -W 1 10.2.0.2 >/dev/null 2>&1; }
wait_until 10 have_addr || fail "no route to the target namespace"
MAC_B=$(cat /sys/class/net/vethB/address)

# sid_of IFACE ADDR prints the SID of the session through IFACE to portal ADDR.
sid_of() {
	for _so_s in /sys/class/iscsi_session/session*; do
		[ -d "$_so_s" ] || continue
		_so_sid=${_so_s##*session}
		[ "$(cat "$_so_s/ifacename")" = "$1" ] || continue
		[ "$(cat /sys/class/iscsi_connection/connection$_so_sid:0/persistent_address)" = "$2" ] && echo "$_so_sid"
	done
}
tx() { cat "/sys/class/net/$1/statistics/tx_bytes"; }

# active_paths MAP prints how many of map MAP's paths dm-multipath uses.
active_paths() { multipathd show paths format "%m %t" 2>/dev/null | awk -v m="$(cat /sys/block/$1/dm/name)" '$1 == m && $2 == "active"' | wc -l; }

# multipath_over_nics: LUN 0 of $T through eth-a (vethA) and eth-b (vethB) as one
# multipathd map; vethA goes down during a 64 MiB write to the map, which must
# complete through vethB and read back identical; vethA comes back, its
# session recovers and the map uses both paths again.
multipath_over_nics() {
	cmd_record "${WHO}_logout_ab" $ADM -m session -r "$(sid_of eth-a 10.2.0.2)" -u
	_mp_a=$(sid_of eth-a 10.1.0.2)
	multipath_conf no
	[ -n "$UDEV_STANDIN_PID" ] || udev_standin_start
	multipathd_start
	_mp_two() { MAP=$(mpath_of "$(lun_block "$_mp_a" 0)") && [ -n "$MAP" ] && [ "$(active_paths "$MAP")" = 2 ]; }
	wait_until 60 _mp_two || fail "$WHO: no map with two active paths: $(multipathd show paths format '%d %m %t %T' 2>&1)"
	dd if=/dev/urandom of=/tmp/pattern bs=1M count=64 2>/dev/null
	_mp_want=$(sha256sum </tmp/pattern | cut -d' ' -f1)
	_mp_w0=$(written_sectors "$MAP")
	_mp_t0=$(now_us)
	dd if=/tmp/pattern of="/dev/$MAP" bs=1M oflag=direct conv=fsync 2>/tmp/mpdd.err &
	_mp_dd=$!
	wait_writing "$MAP" "$_mp_w0"
	$IP link set vethA down
	_mp_down=$(ms_since "$_mp_t0")
	wait $_mp_dd
	_mp_rc=$?
	_mp_wms=$(ms_since "$_mp_t0")
	_mp_during=$(active_paths "$MAP")
	_mp_got=$(dd if="/dev/$MAP" bs=1M count=64 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
	_mp_t1=$(now_us)
	$IP link set vethA up
	_mp_back() { [ "$(cat /sys/class/iscsi_session/session$_mp_a/state)" = LOGGED_IN ] && [ "$(active_paths "$MAP")" = 2 ]; }
	wait_until 120 _mp_back || fail "$WHO: vethA back, but the map has $(active_paths "$MAP") active paths, session $_mp_a $(cat /sys/class/iscsi_session/session$_mp_a/state)"
	emit multipath who "$WHO" rc "$_mp_rc" err "$(cat /tmp/mpdd.err | tr '\n' ' ')" want "$_mp_want" got "$_mp_got" \
		down_ms "$_mp_down" write_ms "$_mp_wms" active_after_write "$_mp_during" back_ms "$(ms_since "$_mp_t1")"
	rm -f /tmp/pattern
	multipath -F >/dev/null 2>&1
	daemon_stop "$MULTIPATHD_PID"
}

# run_as: the same commands with $ADM, named after $WHO.
run_as() {
	cmd_record "${WHO}_iface_a" $ADM -m iface -I eth-a -o new
	cmd_record "${WHO}_iface_a_bind" $ADM -m iface -I eth-a -o update -n iface.net_ifacename -v vethA
	cmd_record "${WHO}_iface_b" $ADM -m iface -I eth-b -o new
	cmd_record "${WHO}_iface_b_bind" $ADM -m iface -I eth-b -o update -n iface.hwaddress -v "$MAC_B"
	cmd_record "${WHO}_discovery" $ADM -m discovery -t st -p 10.1.0.2 -I eth-a -I eth-b
	cmd_record "${WHO}_nodes" $ADM -m node
	# Under those names, with or without -I: the records bound to eth-a and
	# eth-b, none to default (stock's idbm_bind_ifaces_to_nodes).
	cmd_record "${WHO}_discovery_all" $ADM -m discovery -t st -p 10.2.0.2
	# Multipath settings, as os-brick and admins set them: a path that stops
	# answering fails its I/O over within seconds instead of two minutes.
	cmd_record "${WHO}_rt" $ADM -m node -T $T -o update -n node.session.timeo.replacement_timeout -v 5
	cmd_record "${WHO}_noop_int" $ADM -m node -T $T -o update -n node.conn[0].timeo.noop_out_interval -v 2
	cmd_record "${WHO}_noop_tmo" $ADM -m node -T $T -o update -n node.conn[0].timeo.noop_out_timeout -v 2
	cmd_record "${WHO}_login_aa" $ADM -m node -T $T -p 10.1.0.2 -I eth-a --login
	cmd_record "${WHO}_login_bb" $ADM -m node -T $T -p 10.2.0.2 -I eth-b --login
	cmd_record "${WHO}_login_ab" $ADM -m node -T $T -p 10.2.0.2 -I eth-a --login
	cmd_record "${WHO}_ss" ss -tn
	for _ra_x in "eth-a 10.1.0.2 aa" "eth-b 10.2.0.2 bb" "eth-a 10.2.0.2 ab"; do
		set -- $_ra_x
		_ra_sid=$(sid_of "$1" "$2")
		[ -n "$_ra_sid" ] || fail "$WHO: no session through $1 to $2: $(sessions)"
		lun0() { [ -n "$(lun_block $_ra_sid 0)" ]; }
		wait_until 30 lun0 || fail "$WHO: no disk for the session through $1 to $2"
		_ra_a=$(tx vethA)
		_ra_b=$(tx vethB)
		dd_verify "$(lun_block $_ra_sid 0)" 8 "$(lio_lun_file $T 0)"
		emit traffic who "$WHO" path "$3" sid "$_ra_sid" vethA "$(($(tx vethA) - _ra_a))" vethB "$(($(tx vethB) - _ra_b))"
	done
	cmd_record "${WHO}_p1" $ADM -m session -P 1
	multipath_over_nics
	cmd_record "${WHO}_logout_paths" $ADM -m node -T $T --logout
	# The discoveries through eth-a and eth-b also recorded the other
	# targets (LIO names all of them) through those NICs: none of that for
	# what follows.
	cmd_record "${WHO}_delete_nodes" $ADM -m node -o delete
	cmd_record "${WHO}_delete_a" $ADM -m iface -I eth-a -o delete
	cmd_record "${WHO}_delete_b" $ADM -m iface -I eth-b -o delete

	cmd_record "${WHO}_nr_new" $ADM -m node -T $TN -p 127.0.0.1 -o new
	cmd_record "${WHO}_nr_set" $ADM -m node -T $TN -p 127.0.0.1 -o update -n node.session.nr_sessions -v 2
	cmd_record "${WHO}_nr_login" $ADM -m node -T $TN -p 127.0.0.1 --login
	cmd_record "${WHO}_nr_session" $ADM -m session
	cmd_record "${WHO}_nr_again" $ADM -m node -T $TN -p 127.0.0.1 --login
	_ra_sid=$(session_sid $TN)
	cmd_record "${WHO}_nr_add" $ADM -m session -r "$_ra_sid" -o new
	emit sessions who "$WHO" phase added count "$(session_count)"
	cmd_record "${WHO}_nr_one" $ADM -m session -r "$_ra_sid" -u
	emit sessions who "$WHO" phase one_out count "$(session_count)" gone "$([ -d /sys/class/iscsi_session/session$_ra_sid ] && echo no || echo yes)"
	cmd_record "${WHO}_nr_logout" $ADM -m node -T $TN -p 127.0.0.1 --logout
	emit sessions who "$WHO" phase node_out count "$(session_count)"
	cmd_record "${WHO}_nr4_set" $ADM -m node -T $TN -p 127.0.0.1 -o update -n node.session.nr_sessions -v 4
	cmd_record "${WHO}_nr4_login" $ADM -m node -T $TN -p 127.0.0.1 --login
	emit sessions who "$WHO" phase four count "$(session_count)"
	cmd_record "${WHO}_nr4_logout" $ADM -m node -T $TN -p 127.0.0.1 --logout
	cmd_record "${WHO}_nr2_set" $ADM -m node -T $TN -p 127.0.0.1 -o update -n node.session.nr_sessions -v 2
	cmd_record "${WHO}_nowait" $ADM -m node -T $TN -p 127.0.0.1 --login -W
	_ra_t0=$(now_us)
	# Logged in as the initiator's own listing says (goiscsid lists a
	# session once its login and scan are done; the kernel's comes earlier).
	listed() { [ "$($ADM -m session 2>/dev/null | grep -c "$TN")" = 2 ]; }
	wait_until 60 listed || fail "$WHO: -W: the two sessions never came: $(sessions)"
	emit nowait who "$WHO" ms "$(ms_since "$_ra_t0")"
	cmd_record "${WHO}_nowait_logout" $ADM -m node -T $TN -p 127.0.0.1 --logout

	cmd_record "${WHO}_ip_iface" $ADM -m iface -I by-ip -o new
	cmd_record "${WHO}_ip_bind" $ADM -m iface -I by-ip -o update -n iface.ipaddress -v 10.1.0.1
	cmd_record "${WHO}_ip_discovery" timeout 120 $ADM -m discovery -t st -p 10.1.0.2 -I by-ip
	cmd_record "${WHO}_ip_new" $ADM -m node -T $T -p 10.1.0.2 -I by-ip -o new
	cmd_record "${WHO}_ip_timeout" $ADM -m node -T $T -p 10.1.0.2 -I by-ip -o update -n node.conn[0].timeo.login_timeout -v 3
	cmd_record "${WHO}_ip_retry" $ADM -m node -T $T -p 10.1.0.2 -I by-ip -o update -n node.session.initial_login_retry_max -v 1
	cmd_record "${WHO}_ip_login" timeout 120 $ADM -m node -T $T -p 10.1.0.2 -I by-ip --login
	emit sessions who "$WHO" phase by_ip count "$(session_count)"
	cmd_record "${WHO}_ip_delete_node" $ADM -m node -T $T -p 10.1.0.2 -I by-ip -o delete
	cmd_record "${WHO}_ip_delete" $ADM -m iface -I by-ip -o delete

	cmd_record "${WHO}_v6_discovery" $ADM -m discovery -t st -p "[::1]"
	cmd_record "${WHO}_v6_login" $ADM -m node -T $T6 -p "[::1]" --login
	_ra_sid=$(session_sid $T6)
	[ -n "$_ra_sid" ] || fail "$WHO: no session to $T6 over IPv6"
	lun0() { [ -n "$(lun_block $_ra_sid 0)" ]; }
	wait_until 30 lun0 || fail "$WHO: no disk for the IPv6 session"
	dd_verify "$(lun_block $_ra_sid 0)" 4 "$(lio_lun_file $T6 0)"
	cmd_record "${WHO}_v6_p1" $ADM -m session -r "$_ra_sid" -P 1
	cmd_record "${WHO}_v6_logout" $ADM -m node -T $T6 -p "[::1]" --logout
	emit sessions who "$WHO" phase end count "$(session_count)"
}

iscsid_start
ISCSID_PID=$DAEMON_PID # multipathd_start sets DAEMON_PID to its own
ADM=$STOCK_ISCSIADM WHO=stock
run_as
daemon_stop "$ISCSID_PID"
mkdir -p /tmp/stock-db
mv /etc/iscsi/nodes /etc/iscsi/send_targets /etc/iscsi/ifaces /tmp/stock-db/

goiscsid_start
ADM=$GOISCSIADM WHO=goiscsi
run_as
rm -rf /etc/iscsi/nodes /etc/iscsi/send_targets /etc/iscsi/ifaces
# Stock's iscsiadm with goiscsid as its daemon, as consumers that run or ship
# open-iscsi's iscsiadm get it on a host with goiscsi: the iface binding, the
# several sessions and -W arrive through stock's own IPC.
ADM=$STOCK_ISCSIADM WHO=stockadm
run_as
goiscsid_stop
emit_file goiscsid_log /tmp/goiscsid.log
