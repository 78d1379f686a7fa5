# Paths (issue 25): sessions bound to NICs, several sessions per node, -W,
# an iface bound by IP address alone, IPv6. In one boot, stock (iscsid,
# iscsiadm) then goiscsi (goiscsid, goiscsiadm), each on an empty node
# database, the same commands:
# - two NICs: veth pairs vethA 10.1.0.1 <-> 10.1.0.2 and vethB 10.2.0.1 <->
#   10.2.0.2 into a network namespace where LIO listens on both (vm-recipe.md);
#   iface eth-a bound by net_ifacename to vethA, eth-b by hwaddress to vethB;
#   discovery through both (portal x iface records); eth-a to portal A, eth-b to
#   portal B, and eth-a to portal B (the binding must beat the route); the
#   connections in ss, and each session's write counted on the veths;
# - nr_sessions 2 to one portal, -m session -r SID -o new (a third), -r SID -u
#   (exactly that one), the node's logout (the rest); -W;
# - an iface bound only by iface.ipaddress: discovery and login refused;
# - IPv6: LIO on [::1]:3260, discovery, login, data, -P 1, logout.
T=iqn.2003-01.org.example:paths
TN=iqn.2003-01.org.example:paths-nr
T6=iqn.2003-01.org.example:paths-v6
IP=/bin/ip # iproute2's: busybox's cannot make veth pairs

kmod_load veth
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

step() {
	_st_name=$1
	shift
	_st_t0=$(now_us)
	run_capture "$_st_name" "$@"
	emit cmd name "$_st_name" rc "$CAP_RC" ms "$(ms_since "$_st_t0")" stdout_b64 "$(b64 $CAP_OUT)" stderr_b64 "$(b64 $CAP_ERR)"
}
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
count_is() { [ "$(session_count)" = "$1" ]; }

# run_as: the same commands with $ADM, named after $WHO.
run_as() {
	step "${WHO}_iface_a" $ADM -m iface -I eth-a -o new
	step "${WHO}_iface_a_bind" $ADM -m iface -I eth-a -o update -n iface.net_ifacename -v vethA
	step "${WHO}_iface_b" $ADM -m iface -I eth-b -o new
	step "${WHO}_iface_b_bind" $ADM -m iface -I eth-b -o update -n iface.hwaddress -v "$MAC_B"
	step "${WHO}_discovery" $ADM -m discovery -t st -p 10.1.0.2 -I eth-a -I eth-b
	step "${WHO}_nodes" $ADM -m node
	# Under those names, with or without -I: the records bound to eth-a and
	# eth-b, none to default (stock's idbm_bind_ifaces_to_nodes).
	step "${WHO}_discovery_all" $ADM -m discovery -t st -p 10.2.0.2
	step "${WHO}_login_aa" $ADM -m node -T $T -p 10.1.0.2 -I eth-a --login
	step "${WHO}_login_bb" $ADM -m node -T $T -p 10.2.0.2 -I eth-b --login
	step "${WHO}_login_ab" $ADM -m node -T $T -p 10.2.0.2 -I eth-a --login
	step "${WHO}_ss" ss -tn
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
	step "${WHO}_p1" $ADM -m session -P 1
	step "${WHO}_logout_paths" $ADM -m node -T $T --logout
	# The discoveries through eth-a and eth-b also recorded the other
	# targets (LIO names all of them) through those NICs: none of that for
	# what follows.
	step "${WHO}_delete_nodes" $ADM -m node -o delete
	step "${WHO}_delete_a" $ADM -m iface -I eth-a -o delete
	step "${WHO}_delete_b" $ADM -m iface -I eth-b -o delete

	step "${WHO}_nr_new" $ADM -m node -T $TN -p 127.0.0.1 -o new
	step "${WHO}_nr_set" $ADM -m node -T $TN -p 127.0.0.1 -o update -n node.session.nr_sessions -v 2
	step "${WHO}_nr_login" $ADM -m node -T $TN -p 127.0.0.1 --login
	step "${WHO}_nr_session" $ADM -m session
	step "${WHO}_nr_again" $ADM -m node -T $TN -p 127.0.0.1 --login
	_ra_sid=$(session_sid $TN)
	step "${WHO}_nr_add" $ADM -m session -r "$_ra_sid" -o new
	emit sessions who "$WHO" phase added count "$(session_count)"
	step "${WHO}_nr_one" $ADM -m session -r "$_ra_sid" -u
	emit sessions who "$WHO" phase one_out count "$(session_count)" gone "$([ -d /sys/class/iscsi_session/session$_ra_sid ] && echo no || echo yes)"
	step "${WHO}_nr_logout" $ADM -m node -T $TN -p 127.0.0.1 --logout
	emit sessions who "$WHO" phase node_out count "$(session_count)"
	step "${WHO}_nowait" $ADM -m node -T $TN -p 127.0.0.1 --login -W
	_ra_t0=$(now_us)
	wait_until 60 count_is 2 || fail "$WHO: -W: the two sessions never came: $(sessions)"
	emit nowait who "$WHO" ms "$(ms_since "$_ra_t0")"
	step "${WHO}_nowait_logout" $ADM -m node -T $TN -p 127.0.0.1 --logout

	step "${WHO}_ip_iface" $ADM -m iface -I by-ip -o new
	step "${WHO}_ip_bind" $ADM -m iface -I by-ip -o update -n iface.ipaddress -v 10.1.0.1
	step "${WHO}_ip_discovery" timeout 120 $ADM -m discovery -t st -p 10.1.0.2 -I by-ip
	step "${WHO}_ip_new" $ADM -m node -T $T -p 10.1.0.2 -I by-ip -o new
	step "${WHO}_ip_timeout" $ADM -m node -T $T -p 10.1.0.2 -I by-ip -o update -n node.conn[0].timeo.login_timeout -v 3
	step "${WHO}_ip_retry" $ADM -m node -T $T -p 10.1.0.2 -I by-ip -o update -n node.session.initial_login_retry_max -v 1
	step "${WHO}_ip_login" timeout 120 $ADM -m node -T $T -p 10.1.0.2 -I by-ip --login
	emit sessions who "$WHO" phase by_ip count "$(session_count)"

	step "${WHO}_v6_discovery" $ADM -m discovery -t st -p "[::1]"
	step "${WHO}_v6_login" $ADM -m node -T $T6 -p "[::1]" --login
	_ra_sid=$(session_sid $T6)
	[ -n "$_ra_sid" ] || fail "$WHO: no session to $T6 over IPv6"
	lun0() { [ -n "$(lun_block $_ra_sid 0)" ]; }
	wait_until 30 lun0 || fail "$WHO: no disk for the IPv6 session"
	dd_verify "$(lun_block $_ra_sid 0)" 4 "$(lio_lun_file $T6 0)"
	step "${WHO}_v6_p1" $ADM -m session -r "$_ra_sid" -P 1
	step "${WHO}_v6_logout" $ADM -m node -T $T6 -p "[::1]" --logout
	emit sessions who "$WHO" phase end count "$(session_count)"
}

iscsid_start
ADM=$STOCK_ISCSIADM WHO=stock
run_as
iscsid_stop
mkdir -p /tmp/stock-db
mv /etc/iscsi/nodes /etc/iscsi/send_targets /etc/iscsi/ifaces /tmp/stock-db/

goiscsid_start
ADM=$GOISCSIADM WHO=goiscsi
run_as
goiscsid_stop
emit_file goiscsid_log /tmp/goiscsid.log
