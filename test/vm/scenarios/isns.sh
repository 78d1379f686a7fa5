# iSNS (issue 22): Debian's isnsd as the name server, targets registered in it
# with isnsadm, as an array would register them (LIO does not register itself).
# In one boot, stock (iscsid, iscsiadm) then goiscsi (goiscsid, goiscsiadm):
# -m discovery -t isns, a login with data read back identical, a logout,
# -m discoverydb -t isns -o new / show / --discover, the listings, the records
# each wrote and the links from isns/ to them, after the first discovery and
# at the end (stock's are moved aside before goiscsi runs); a server that
# refuses and one that closes. Then goiscsi only: with the discovery record
# saying use_discoveryd = Yes and node.startup = automatic, goiscsid registers;
# a target registered meanwhile gets its record through the SCN and a session;
# deregistered, its session is logged out and its record stays; goiscsid
# deregisters when it stops. A server that sends garbage and one that never
# answers (goiscsi only: libisns waits 60 s for each). Last, with the first
# target deregistered, stock's iscsiadm and goiscsiadm both find no portals and
# keep the record, and stock's -m discoverydb -o delete removes the records
# goiscsi made, through their links.
T1=iqn.2003-01.org.example:isns-one
T2=iqn.2003-01.org.example:isns-two
lio_target $T1 127.0.0.1:3260 1 16
lio_target $T2 127.0.0.1:3261 1 16

# isnsd needs a host name it can resolve to an address on a netdev other than
# lo, and the isns service in /etc/services (vm-recipe.md).
kmod_load dummy
ip link add dummy0 type dummy 2>/dev/null # loading the module may make dummy0
ip addr add 10.9.9.1/24 dev dummy0 || fail "dummy0 address"
ip link set dummy0 up
hostname goiscsi-vm
printf '127.0.0.1 localhost\n10.9.9.1 goiscsi-vm\n' >/etc/hosts
printf 'hosts: files\nservices: files\n' >/etc/nsswitch.conf
printf 'isns 3205/tcp\nisns 3205/udp\n' >/etc/services
mkdir -p /etc/isns /var/lib/isns
printf 'Database = /var/lib/isns\nDefaultDiscoveryDomain = 1\nSecurity = 0\nSLPRegister = 0\n' >/etc/isns/isnsd.conf
setsid isnsd -f -4 >/tmp/isnsd.log 2>&1 &
isnsd_up() { grep -q ':0C85 ' /proc/net/tcp; } # 3205
wait_until 10 isnsd_up || fail "isnsd does not listen: $(cat /tmp/isnsd.log)"

# isnsadm_as IQN ARGS... runs isnsadm with IQN as its source, as the target's
# own registration would.
isnsadm_as() {
	printf 'SourceName = %s\nServerAddress = 127.0.0.1\nSecurity = 0\n' "$1" >/tmp/isnsadm.conf
	shift
	isnsadm -c /tmp/isnsadm.conf "$@" >/tmp/isnsadm.out 2>&1 || fail "isnsadm $*: $(cat /tmp/isnsadm.out)"
}
isnsadm_as $T1 --register target=$T1 portal=127.0.0.1:3260

# links WHO STAGE emits the links from discovery sources to node records
# (isns/, send_targets/) with what they point at.
links() {
	for _l_f in $(cd /etc/iscsi && find isns send_targets -type l 2>/dev/null | sort); do
		emit link who "$1" stage "$2" path "$_l_f" to "$(readlink "/etc/iscsi/$_l_f")"
	done
}
# records WHO emits the node database's files: each record's content, the
# isns/ tree and the links.
records() {
	for _rc_f in $(cd /etc/iscsi && find nodes isns -type f 2>/dev/null | sort); do
		emit record who "$1" path "$_rc_f" text_b64 "$(b64 "/etc/iscsi/$_rc_f")"
	done
	emit tree who "$1" list "$(cd /etc/iscsi && find isns 2>/dev/null | sort | tr '\n' ' ')"
	links "$1" end
}
# listening PORT succeeds once something listens on TCP PORT.
listening() {
	awk -v p=":$(printf %04X "$1")" '$4 == "0A" && substr($2, length($2) - 4) == p {f = 1} END {exit !f}' /proc/net/tcp /proc/net/tcp6
}
# closing_server PORT accepts one connection and closes it at once.
closing_server() {
	setsid nc -l -p "$1" </dev/null >/dev/null 2>&1 &
	wait_until 5 listening "$1" || fail "nc does not listen on $1"
}
NCS=

# run_as WHO: the same commands with the $ADM of WHO, records after.
run_as() {
	cmd_record "$1_discovery" $ADM -m discovery -t isns -p 127.0.0.1
	links "$1" discovery
	cmd_record "$1_login" $ADM -m node -T $T1 -p 127.0.0.1:3260 --login
	_ra_sid=$(session_sid $T1)
	[ -n "$_ra_sid" ] || fail "$1: no session to $T1 after the login"
	lun0() { [ -n "$(lun_block $_ra_sid 0)" ]; }
	wait_until 30 lun0 || fail "$1: no disk for LUN 0 of $T1"
	dd_verify "$(lun_block $_ra_sid 0)" 4 "$(lio_lun_file $T1 0)"
	cmd_record "$1_logout" $ADM -m node -T $T1 -p 127.0.0.1:3260 --logout
	cmd_record "$1_list" $ADM -m discovery -P 1
	cmd_record "$1_dbnew" $ADM -m discoverydb -t isns -p 127.0.0.1 -o new
	cmd_record "$1_dbshow" $ADM -m discoverydb -t isns -p 127.0.0.1
	cmd_record "$1_dbdiscover" $ADM -m discoverydb -t isns -p 127.0.0.1 --discover
	cmd_record "$1_dblist" $ADM -m discoverydb
	cmd_record "$1_dblist1" $ADM -m discoverydb -P 1
	cmd_record "$1_refused" $ADM -m discovery -t isns -p 127.0.0.1:3299
	closing_server 3298
	cmd_record "$1_closes" $ADM -m discovery -t isns -p 127.0.0.1:3298
	records "$1"
}

iscsid_start
ADM=$STOCK_ISCSIADM
run_as stock
iscsid_stop
mkdir -p /tmp/stock-db
mv /etc/iscsi/nodes /etc/iscsi/isns /tmp/stock-db/

goiscsid_start
ADM=$GOISCSIADM
run_as goiscsi

# SCN: the server's record follows the server from goiscsid's start on, and
# new records log in.
cmd_record goiscsi_followed $ADM -m discoverydb -t isns -p 127.0.0.1 -o update -n discovery.isns.use_discoveryd -v Yes
echo "node.startup = automatic" >>/etc/iscsi/iscsid.conf
goiscsid_stop
goiscsid_start
registered() { grep -q 'iSNS: registered' /tmp/goiscsid.log; }
wait_until 20 registered || fail "goiscsid did not register with isnsd: $(grep iSNS /tmp/goiscsid.log)"
_t0=$(now_us)
isnsadm_as $T2 --register target=$T2 portal=127.0.0.1:3261
t2_session() { [ -n "$(session_sid $T2)" ] && [ -f /etc/iscsi/nodes/$T2/127.0.0.1,3261,1/default ]; }
wait_until 30 t2_session || fail "no record and session for $T2 after its registration: $(grep iSNS /tmp/goiscsid.log)"
emit scn_added ms "$(ms_since "$_t0")" sid "$(session_sid $T2)" \
	startup "$(grep '^node.startup' /etc/iscsi/nodes/$T2/127.0.0.1,3261,1/default)" \
	dtype "$(grep '^node.discovery_type' /etc/iscsi/nodes/$T2/127.0.0.1,3261,1/default)"
_t0=$(now_us)
isnsadm_as $T2 --deregister iscsi-name=$T2
t2_gone() { [ -z "$(session_sid $T2)" ]; }
wait_until 30 t2_gone || fail "the session to $T2 outlived its deregistration: $(grep iSNS /tmp/goiscsid.log)"
emit scn_removed ms "$(ms_since "$_t0")" record "$(ls /etc/iscsi/nodes/$T2/127.0.0.1,3261,1/ 2>&1)"
cmd_record goiscsi_isnsnodes isnsadm -c /tmp/isnsadm.conf --list nodes
goiscsid_stop
cmd_record goiscsi_isnsnodes_after isnsadm -c /tmp/isnsadm.conf --list nodes
emit goiscsid_log text_b64 "$(grep -i 'isns' /tmp/goiscsid.log | base64 -w 0)"

goiscsid_start
# Garbage, and silence: bounded by goiscsi's 10 s timeout.
(head -c 512 /dev/urandom; sleep 60) | setsid nc -l -p 3297 >/dev/null 2>&1 &
(sleep 60) | setsid nc -l -p 3296 >/dev/null 2>&1 &
wait_until 5 listening 3297 || fail "nc does not listen on 3297"
wait_until 5 listening 3296 || fail "nc does not listen on 3296"
cmd_record goiscsi_garbage $ADM -m discovery -t isns -p 127.0.0.1:3297
cmd_record goiscsi_silent $ADM -m discovery -t isns -p 127.0.0.1:3296

# The first target deregistered: no portals, and the record stays, for both.
isnsadm_as $T1 --deregister iscsi-name=$T1
cmd_record goiscsi_gone $ADM -m discovery -t isns -p 127.0.0.1
cmd_record stock_gone $STOCK_ISCSIADM -m discovery -t isns -p 127.0.0.1
cmd_record goiscsi_nodes $ADM -m node
goiscsid_stop

# Stock's -m discoverydb -o delete deletes the records it finds through the
# links in the server's directory: goiscsi's, the SCN-made one's included.
cmd_record stock_dbdelete $STOCK_ISCSIADM -m discoverydb -t isns -p 127.0.0.1 -o delete
emit after_dbdelete list "$(cd /etc/iscsi && find nodes isns 2>/dev/null | sort | tr '\n' ' ')"
