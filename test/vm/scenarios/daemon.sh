# The daemon's proof, for either initiator (INITIATOR=stock|goiscsi): CHAP, mutual
# CHAP, a wrong secret (exit 24), a portal nobody listens on, 16 targets logged in
# at once with data checked on each, and the sysfs attributes of a session.
P=127.0.0.1:3260
initiator_start
B=iqn.2003-01.org.example
node() { $ADM -m node -T "$1" -p $P "$@"; }
set_auth() { # IQN USER SECRET [USER_IN SECRET_IN]
	$ADM -m node -T "$1" -p $P -o update -n node.session.auth.authmethod -v CHAP >/dev/null &&
		$ADM -m node -T "$1" -p $P -o update -n node.session.auth.username -v "$2" >/dev/null &&
		$ADM -m node -T "$1" -p $P -o update -n node.session.auth.password -v "$3" >/dev/null || fail "set CHAP on $1"
	if [ $# -ge 5 ]; then
		$ADM -m node -T "$1" -p $P -o update -n node.session.auth.username_in -v "$4" >/dev/null &&
			$ADM -m node -T "$1" -p $P -o update -n node.session.auth.password_in -v "$5" >/dev/null || fail "set mutual CHAP on $1"
	fi
}
login_rc() { # NAME IQN: logs in, emits the outcome
	run_capture "$1" $ADM -m node -T "$2" -p $P --login
	emit login name "$1" rc "$CAP_RC" stdout_b64 "$(b64 $CAP_OUT)" stderr_b64 "$(b64 $CAP_ERR)"
}
logout_all() { $ADM -m session -u >/dev/null 2>&1 || $ADM -m node -U all >/dev/null 2>&1; wait_until 10 sh -c '[ "$(ls /sys/class/iscsi_session | wc -l)" = 0 ]'; }

lio_target $B:chap $P 1 16
lio_chap $B:chap alice alice-secret-12
lio_target $B:mutual $P 1 16
lio_chap $B:mutual bob bob-secret-1234 tgt target-secret-12
$ADM -m discovery -t st -p 127.0.0.1 >/dev/null || fail "discovery"

set_auth $B:chap alice wrong-secret-12
login_rc chap_wrong $B:chap
set_auth $B:chap alice alice-secret-12
login_rc chap $B:chap
set_auth $B:mutual bob bob-secret-1234 tgt target-secret-12
login_rc mutual $B:mutual
set_auth $B:mutual bob bob-secret-1234 tgt wrong-target-12
$ADM -m node -T $B:mutual -p $P --logout >/dev/null 2>&1
login_rc mutual_wrong_target $B:mutual
logout_all

# A portal nobody listens on: a clear error, and the daemon serves the next login.
$ADM -m node -o new -T $B:nobody -p 127.0.0.1:3999 >/dev/null || fail "new node"
$ADM -m node -T $B:nobody -p 127.0.0.1:3999 -o update -n node.session.initial_login_retry_max -v 1 >/dev/null
$ADM -m node -T $B:nobody -p 127.0.0.1:3999 -o update -n node.conn[0].timeo.login_timeout -v 3 >/dev/null
t0=$(now_us)
run_capture dead $ADM -m node -T $B:nobody -p 127.0.0.1:3999 --login
emit login name dead rc "$CAP_RC" ms "$(ms_since $t0)" stderr_b64 "$(b64 $CAP_ERR)"
$ADM -m node -T $B:nobody -p 127.0.0.1:3999 -o delete

# sysfs attributes of a session, for comparison with stock.
login_rc attrs $B:chap
SID=$(session_sid $B:chap)
for f in targetname tpgt initiatorname ifacename recovery_tmo username abort_tmo lu_reset_tmo tgt_reset_tmo; do
	emit sysfs_session name "$f" value "$(cat /sys/class/iscsi_session/session$SID/$f 2>/dev/null)"
done
for f in persistent_address persistent_port address port max_recv_dlength max_xmit_dlength header_digest data_digest ping_tmo recv_tmo exp_statsn; do
	emit sysfs_conn name "$f" value "$(cat /sys/class/iscsi_connection/connection$SID:0/$f 2>/dev/null)"
done
HOST=$(sessions | awk -v s="$SID" '$1 == s {print $2; exit}')
for f in netdev hwaddress ipaddress initiatorname; do
	emit sysfs_host name "host_$f" value "$(cat /sys/class/iscsi_host/host$HOST/$f 2>/dev/null)"
done
logout_all

# 16 targets logged in with one command, data checked on each.
for t in chap mutual; do
	lio_del_target $B:$t
	$ADM -m node -T $B:$t -o delete
done
N=${TARGETS:-16}
i=0
while [ $i -lt $N ]; do lio_target $B:many$i $P 1 8; i=$((i + 1)); done
$ADM -m discovery -t st -p 127.0.0.1 >/dev/null || fail "discovery of $N targets"
t0=$(now_us)
run_capture many $ADM -m node -L all
emit login name many rc "$CAP_RC" ms "$(ms_since $t0)" stderr_b64 "$(b64 $CAP_ERR)"
ok=0
i=0
while [ $i -lt $N ]; do
	sid=$(session_sid $B:many$i)
	has() { [ -n "$(lun_block "$sid" 0)" ]; }
	if [ -n "$sid" ] && wait_until 20 has; then
		dd_verify "$(lun_block "$sid" 0)" 2 && ok=$((ok + 1))
	fi
	i=$((i + 1))
done
emit many targets "$N" verified "$ok"
logout_all
daemon_stop
