# Login storm and its figures: N targets (one LUN each) behind DELAY of netem on lo
# each way. Per round: one login until its block device exists; `-L all` and the
# time until every block device exists; `-m session` and `-m session -P 3`; `-U all`.
# Also the daemon's RSS idle and with N sessions. Timings are data, not asserted.
# Env: INITIATOR, N (64), DELAY (50ms; "0" for none), ROUNDS (2).
N=${N:-64}
B=iqn.2003-01.org.example:storm
P=127.0.0.1:3260
i=0
while [ $i -lt $N ]; do lio_target $B$i $P 1 1; i=$((i + 1)); done
initiator_start
$ADM -m discovery -t st -p 127.0.0.1 >/dev/null || fail "discovery"
[ "${DELAY:-50ms}" != 0 ] && netem delay "${DELAY:-50ms}"
emit rss phase idle kb "$(rss_kb $DAEMON_PID)"
blocks() { for _s in $(sessions | cut -d' ' -f1); do session_devices "$_s"; done | grep -c ' sd'; }
r=1
while [ $r -le "${ROUNDS:-2}" ]; do
	t0=$(now_us)
	$ADM -m node -T ${B}0 -p $P --login >/dev/null || fail "single login"
	one() { [ "$(blocks)" = 1 ]; }
	wait_until 30 one || fail "single login: no block device"
	single=$(ms_since $t0)
	$ADM -m node -T ${B}0 -p $P --logout >/dev/null || fail "single logout"
	none() { [ "$(session_count)" = 0 ]; }
	wait_until 30 none || fail "single logout left a session"

	t0=$(now_us)
	run_capture login_all $ADM -m node -L all
	login_all=$(ms_since $t0)
	[ "$CAP_RC" = 0 ] || fail "-L all exit $CAP_RC: $(tail -n 3 $CAP_ERR)"
	all() { [ "$(blocks)" = "$N" ]; }
	wait_until 120 all || fail "-L all: $(blocks) of $N block devices"
	devices_ms=$(ms_since $t0)
	[ $r = 1 ] && emit rss phase sessions kb "$(rss_kb $DAEMON_PID)" sessions "$(session_count)"
	t0=$(now_us)
	$ADM -m session >/dev/null || fail "-m session"
	list=$(ms_since $t0)
	t0=$(now_us)
	$ADM -m session -P 3 >/dev/null || fail "-m session -P 3"
	list3=$(ms_since $t0)
	t0=$(now_us)
	run_capture logout_all $ADM -m node -U all
	logout_all=$(ms_since $t0)
	[ "$CAP_RC" = 0 ] || fail "-U all exit $CAP_RC: $(tail -n 3 $CAP_ERR)"
	wait_until 60 none || fail "-U all left $(session_count) sessions"
	emit storm round "$r" targets "$N" single_ms "$single" login_all_ms "$login_all" devices_ms "$devices_ms" \
		session_ms "$list" session_p3_ms "$list3" logout_all_ms "$logout_all"
	r=$((r + 1))
done
netem_clear
daemon_stop
