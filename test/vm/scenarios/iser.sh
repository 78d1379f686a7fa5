# iSER over soft-RoCE (issue 25): a dummy0 netdev with 10.9.9.1, LIO's portal on
# it. For each initiator of INITIATORS (default "stock goiscsi"), in one boot:
#
# 1. without an RDMA device (ib_iser loaded, no rxe link; the portal takes TCP
#    only): -m discovery -t st -I iser and a login through an iser record fail
#    with their exit codes and messages, and nothing falls back to TCP (no
#    session, no TCP connection to :3260);
# 2. with rxe0 on dummy0 and the portal's iser switched on: -m discovery -t st
#    -I iser (over an iSER endpoint: stock's iscsiadm in the kernel itself,
#    goiscsiadm through goiscsid), a login over iSER (the host's driver is iscsi_iser, -P 1 says
#    "Iface Transport: iser", `ss -tn` has no connection to :3260), 32 MiB
#    written and read back identical;
# 3. recovery: the target's TPG disabled (its sessions dropped) and enabled
#    3 s later: the session logs in again over a new endpoint, 8 MiB read back
#    identical; goiscsi only: goiscsid killed and started again takes the
#    session over, 4 MiB read back; logout, after which the target has no
#    session and the kernel no endpoint left.
#
# Env: INITIATORS, DD_MIB (32).
IQN=iqn.2003-01.org.example:iser
ADDR=10.9.9.1
PORTAL=$ADDR:3260

for m in crc32_generic ib_core ib_uverbs ib_cm iw_cm rdma_cm rdma_ucm rdma_rxe ib_iser ib_isert dummy; do
	kmod_load $m
done
ip link add dummy0 type dummy 2>/dev/null # loading the module may make dummy0
ip addr add $ADDR/24 dev dummy0 || fail "dummy0 address"
ip link set dummy0 up
lio_target $IQN $PORTAL 1 64

step() {
	_st_name=$1
	shift
	_st_t0=$(now_us)
	run_capture "$_st_name" "$@"
	emit cmd name "$_st_name" rc "$CAP_RC" ms "$(ms_since "$_st_t0")" stdout_b64 "$(b64 $CAP_OUT)" stderr_b64 "$(b64 $CAP_ERR)"
}
# tcp_to_portal prints the TCP connections to port 3260 (none over iSER).
tcp_to_portal() { ss -tnH state established 2>/dev/null | awk '$4 ~ /:3260$/ || $5 ~ /:3260$/' | tr '\n' ';'; }
start() {
	rm -rf /etc/iscsi/nodes /etc/iscsi/send_targets
	case $1 in
	stock)
		ADM=$STOCK_ISCSIADM
		iscsid_start
		;;
	goiscsi)
		ADM=$GOISCSIADM
		goiscsid_start
		;;
	esac
}
stop() {
	case $1 in
	stock) iscsid_stop ;;
	goiscsi) goiscsid_stop ;;
	esac
	emit_file "$1_$2_daemon.log" "$([ "$1" = stock ] && echo /tmp/iscsid.log || echo /tmp/goiscsid.log)"
}

# 1. No RDMA device.
emit rdma phase nodev links "$(rdma link show 2>&1 | tr '\n' ';')"
for WHO in ${INITIATORS:-stock goiscsi}; do
	start $WHO
	step ${WHO}_nodev_discovery $ADM -m discovery -t st -p $ADDR -I iser
	step ${WHO}_nodev_new $ADM -m node -o new -T $IQN -p $PORTAL -I iser
	# Both retry the login for initial_login_retry_max login timeouts (8 x
	# 15 s by default, as the route may come): 2 keep the boot short.
	$ADM -m node -T $IQN -p $PORTAL -I iser -o update -n node.session.initial_login_retry_max -v 2 >/dev/null 2>&1
	step ${WHO}_nodev_login $ADM -m node -T $IQN -p $PORTAL -I iser --login
	emit nodev who $WHO sessions "$(session_count)" tcp "$(tcp_to_portal)"
	$ADM -m node -T $IQN -p $PORTAL -I iser --logout >/dev/null 2>&1
	stop $WHO nodev
done

# 2. rxe0 on dummy0, the portal's iSER switched on (only now: without an RDMA
# device isert cannot bind, rdma_bind_addr() -99).
rdma link add rxe0 type rxe netdev dummy0 || fail "rdma link add rxe0"
echo 1 >"$(lio_tpg $IQN)/np/$PORTAL/iser" || fail "lio: iser on $PORTAL"
emit rdma phase rxe links "$(rdma link show 2>&1 | tr '\n' ';')"
for WHO in ${INITIATORS:-stock goiscsi}; do
	start $WHO
	step ${WHO}_discovery $ADM -m discovery -t st -p $ADDR -I iser
	emit discovery_tcp who $WHO tcp "$(tcp_to_portal)"
	step ${WHO}_login $ADM -m node -T $IQN -p $PORTAL -I iser --login
	SID=$(session_sid $IQN)
	[ -n "$SID" ] || fail "$WHO: no session after the iSER login: $(cat $CAP_ERR)"
	have_block() { [ -n "$(lun_block $SID 0)" ]; }
	wait_until 30 have_block || fail "$WHO: no block device for LUN 0 within 30 s"
	HOST=$(basename "$(readlink -f /sys/class/iscsi_session/session$SID/device/..)")
	emit session who $WHO sid $SID tcp "$(tcp_to_portal)" \
		proc_name "$(cat /sys/class/scsi_host/$HOST/proc_name 2>/dev/null)" \
		mrdsl "$(cat /sys/class/iscsi_connection/connection$SID:0/max_recv_dlength 2>/dev/null)" \
		mxdsl "$(cat /sys/class/iscsi_connection/connection$SID:0/max_xmit_dlength 2>/dev/null)" \
		hdrdgst "$(cat /sys/class/iscsi_connection/connection$SID:0/header_digest 2>/dev/null)" \
		endpoints "$(ls /sys/class/iscsi_endpoint 2>/dev/null | tr '\n' ' ')"
	step ${WHO}_p1 $ADM -m session -P 1
	step ${WHO}_p2 $ADM -m session -P 2
	# The kernel's statistics of an iSER connection (GET_STATS through
	# ib_iser's handle: iscsi_tcp's would run its code on iser's data).
	step ${WHO}_stats $ADM -m session -r $SID -s
	dd_verify "$(lun_block $SID 0)" "${DD_MIB:-32}" "$(lio_lun_file $IQN 0)"
	emit dd_who who $WHO phase login
	# 3. Recovery: the target drops the session (its TPG disabled, which
	# closes its connections) and comes back 3 s later; the initiator logs
	# in again over a new iSER endpoint, and I/O works.
	echo 0 >"$(lio_tpg $IQN)/enable" || fail "lio: disable $IQN"
	down() { [ "$(cat /sys/class/iscsi_session/session$SID/state 2>/dev/null)" != LOGGED_IN ]; }
	wait_until 30 down && went_down=yes || went_down=no
	sleep 3
	t0=$(now_us)
	echo 1 >"$(lio_tpg $IQN)/enable" || fail "lio: enable $IQN"
	back() { [ "$(cat /sys/class/iscsi_session/session$SID/state 2>/dev/null)" = LOGGED_IN ]; }
	wait_until 60 back && came_back=yes || came_back=no
	emit recovery who $WHO down $went_down back $came_back ms "$(ms_since $t0)" sid_now "$(session_sid $IQN)" \
		tcp "$(tcp_to_portal)" sessions "$(session_count)"
	if [ $came_back = yes ]; then
		wait_until 30 have_block || fail "$WHO: no block device after recovery"
		dd_verify "$(lun_block $SID 0)" 8 "$(lio_lun_file $IQN 0)"
		emit dd_who who $WHO phase recovery
	fi
	if [ $WHO = goiscsi ]; then
		# 4. Takeover: goiscsid killed and started again takes the iSER
		# session over (its requests then carry ib_iser's handle), I/O
		# goes on, and the logout below is the new daemon's.
		kill -KILL "$GOISCSID_PID"
		wait "$GOISCSID_PID" 2>/dev/null
		GOISCSID_PID=
		DAEMON_PID=
		goiscsid_start
		step goiscsi_takeover_p1 $ADM -m session -P 1
		step goiscsi_takeover_stats $ADM -m session -r $SID -s
		dd_verify "$(lun_block $SID 0)" 4 "$(lio_lun_file $IQN 0)"
		emit dd_who who $WHO phase takeover
	fi
	step ${WHO}_logout $ADM -m node -T $IQN -p $PORTAL -I iser --logout
	no_session() { [ "$(session_count)" = 0 ]; }
	wait_until 10 no_session || fail "$WHO: session still there 10 s after logout"
	# What the logout left: the target's sessions, the kernel's endpoints.
	sleep 1
	emit after_logout who $WHO target_sessions "$(cat "$(lio_tpg $IQN)/dynamic_sessions" 2>/dev/null | tr '\n' ' ')" \
		endpoints "$(ls /sys/class/iscsi_endpoint 2>/dev/null | tr '\n' ' ')"
	stop $WHO rxe
done
emit done
