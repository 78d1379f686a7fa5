# Connection drops during writes, each initiator of INITIATORS in turn in one boot:
# TRIALS times (STOCK_TRIALS for stock) a 64 MiB O_DIRECT write to a LIO LUN is
# started and its TCP connection is killed at a random moment in it (ss -K, as a
# reset from the network would); the kernel keeps the session and queues I/O, the
# initiator logs in again, the write completes, and the LUN must read back exactly
# what was written. Two patterns alternate, so a write lost in the drop cannot pass
# for the new one. A "drops" record per initiator: counts, the write's time without
# a drop (baseline: the faster of two) and the median and slowest with one (what recovery costs).
# Env: INITIATORS (default $INITIATOR), TRIALS (default 100), STOCK_TRIALS
# (default TRIALS), MIB (default 64).
IQN=iqn.2003-01.org.example:drops
P=127.0.0.1:3260
MIB=${MIB:-64}
lio_target $IQN $P 1 "$MIB"
kmod_load tcp_diag
for p in a b; do
	dd if=/dev/urandom of=/tmp/pattern.$p bs=1M count="$MIB" 2>/dev/null || fail "pattern"
	eval "want_$p=$(md5sum </tmp/pattern.$p | cut -d' ' -f1)"
done

# median FILE prints the median of the numbers in FILE, one a line.
median() { sort -n "$1" | awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# drops INITIATOR TRIALS runs the trials with one initiator and emits its record.
drops() {
	INITIATOR=$1
	initiator_start
	$ADM -m discovery -t st -p $P >/dev/null || fail "$1: discovery"
	$ADM -m node -T $IQN -p $P --login >/dev/null || fail "$1: login"
	SID=$(session_sid $IQN)
	has() { [ -n "$(lun_block "$SID" 0)" ]; }
	wait_until 20 has || fail "$1: no block device"
	DEV=$(lun_block "$SID" 0)
	logged_in() { [ "$(cat /sys/class/iscsi_session/session$SID/state)" = LOGGED_IN ]; }

	# Two writes without a drop; the faster is the baseline. The first is
	# often the slower (cold): timed from it, a drop at half of it once came
	# after a later write had already ended.
	base_ms=
	for p in a b; do
		t0=$(now_us)
		dd if=/tmp/pattern.$p of=/dev/$DEV bs=1M oflag=direct conv=fsync 2>/dev/null || fail "$1: baseline write"
		ms=$(ms_since $t0)
		base_ms=$(awk -v a="${base_ms:-$ms}" -v b="$ms" 'BEGIN {print (a < b ? a : b)}')
	done

	ok=0 bad=0 ddfail=0 mid=0
	: >/tmp/write_ms
	errors0=$(dmesg | grep -c 'detected conn error')
	t_all=$(now_us)
	i=0
	while [ "$i" -lt "$2" ]; do
		i=$((i + 1))
		p=a
		[ $((i % 2)) = 0 ] && p=b
		t0=$(now_us)
		dd if=/tmp/pattern.$p of=/dev/$DEV bs=1M oflag=direct conv=fsync 2>/tmp/dd.err &
		ddpid=$!
		# Somewhere in 10-50% of a write's time without a drop: a fixed
		# range of seconds would miss the write on a fast machine.
		sleep "$(awk -v ms="$base_ms" -v pct=$((RANDOM % 41 + 10)) 'BEGIN {printf "%.3f", ms * pct / 100000}')"
		kill -0 $ddpid 2>/dev/null && mid=$((mid + 1))
		ss -K dst 127.0.0.1 dport = :3260 >/dev/null || fail "$1: ss -K"
		if wait $ddpid; then :; else
			ddfail=$((ddfail + 1))
			log "$1 trial $i: dd failed: $(cat /tmp/dd.err)"
		fi
		ms_since $t0 >>/tmp/write_ms
		wait_until 30 logged_in || fail "$1 trial $i: session not back"
		got=$(dd if=/dev/$DEV bs=1M count="$MIB" iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
		eval "want=\$want_$p"
		if [ "$got" = "$want" ]; then ok=$((ok + 1)); else
			bad=$((bad + 1))
			log "$1 trial $i: read back $got, wrote $want"
		fi
	done
	emit drops initiator "$1" trials "$i" ok "$ok" bad "$bad" dd_failed "$ddfail" dropped_mid_write "$mid" \
		conn_errors "$(($(dmesg | grep -c 'detected conn error') - errors0))" \
		baseline_write_ms "$base_ms" median_write_ms "$(median /tmp/write_ms)" \
		slowest_write_ms "$(sort -n /tmp/write_ms | tail -n 1)" total_ms "$(ms_since $t_all)" \
		state "$(cat /sys/class/iscsi_session/session$SID/state)"
	$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "$1: logout"
	$ADM -m node -o delete >/dev/null 2>&1
	daemon_stop
}

for ini in ${INITIATORS:-${INITIATOR:-stock}}; do
	n=${TRIALS:-100}
	[ "$ini" = stock ] && n=${STOCK_TRIALS:-$n}
	drops "$ini" "$n"
done
