# Connection drops during writes: TRIALS times in one boot, a 64 MiB O_DIRECT write
# to a LIO LUN is started and its TCP connection is killed at a random moment in
# it (ss -K, as a reset from the network would); the kernel keeps the session and
# queues I/O, the initiator logs in again, the write completes, and the LUN must
# read back exactly what was written. Two patterns alternate, so a write lost in
# the drop cannot pass for the new one.
# Env: INITIATOR (stock|goiscsi), TRIALS (default 100), MIB (default 64).
IQN=iqn.2003-01.org.example:drops
P=127.0.0.1:3260
MIB=${MIB:-64}
lio_target $IQN $P 1 "$MIB"
kmod_load tcp_diag
initiator_start
$ADM -m discovery -t st -p $P >/dev/null || fail "discovery"
$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login"
SID=$(session_sid $IQN)
has() { [ -n "$(lun_block "$SID" 0)" ]; }
wait_until 20 has || fail "no block device"
DEV=$(lun_block "$SID" 0)
for p in a b; do
	dd if=/dev/urandom of=/tmp/pattern.$p bs=1M count="$MIB" 2>/dev/null || fail "pattern"
	eval "want_$p=$(md5sum </tmp/pattern.$p | cut -d' ' -f1)"
done
logged_in() { [ "$(cat /sys/class/iscsi_session/session$SID/state)" = LOGGED_IN ]; }

# A write without a drop, for the baseline.
t0=$(now_us)
dd if=/tmp/pattern.a of=/dev/$DEV bs=1M oflag=direct conv=fsync 2>/dev/null || fail "baseline write"
base_ms=$(ms_since $t0)

ok=0 bad=0 ddfail=0 mid=0 slowest=0
errors0=$(dmesg | grep -c 'detected conn error')
t_all=$(now_us)
i=0
while [ "$i" -lt "${TRIALS:-100}" ]; do
	i=$((i + 1))
	p=a
	[ $((i % 2)) = 0 ] && p=b
	t0=$(now_us)
	dd if=/tmp/pattern.$p of=/dev/$DEV bs=1M oflag=direct conv=fsync 2>/tmp/dd.err &
	ddpid=$!
	# Somewhere in the first ~60% of the write.
	sleep "0.$((RANDOM % 8 + 1))"
	kill -0 $ddpid 2>/dev/null && mid=$((mid + 1))
	ss -K dst 127.0.0.1 dport = :3260 >/dev/null || fail "ss -K"
	if wait $ddpid; then :; else
		ddfail=$((ddfail + 1))
		log "trial $i: dd failed: $(cat /tmp/dd.err)"
	fi
	ms=$(ms_since $t0)
	slowest=$(awk -v a="$slowest" -v b="$ms" 'BEGIN {print (b > a) ? b : a}')
	wait_until 30 logged_in || fail "trial $i: session not back"
	got=$(dd if=/dev/$DEV bs=1M count="$MIB" iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
	eval "want=\$want_$p"
	if [ "$got" = "$want" ]; then ok=$((ok + 1)); else
		bad=$((bad + 1))
		log "trial $i: read back $got, wrote $want"
	fi
done
emit drops trials "$i" ok "$ok" bad "$bad" dd_failed "$ddfail" dropped_mid_write "$mid" \
	conn_errors "$(($(dmesg | grep -c 'detected conn error') - errors0))" \
	baseline_write_ms "$base_ms" slowest_write_ms "$slowest" total_ms "$(ms_since $t_all)" \
	state "$(cat /sys/class/iscsi_session/session$SID/state)"
$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
daemon_stop
