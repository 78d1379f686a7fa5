# Side-by-side benchmark of stock open-iscsi 2.1.8 and goiscsi in one boot: the same
# kernel, LIO, netem and machine load for both. N targets of one LUN each behind
# DELAY of netem on lo each way; ROUNDS rounds, the initiators' order alternating.
# Per round and initiator ("bench" record): one login until its block device exists,
# `-m node -L all` and the time until every block device exists, `-m node -U all`;
# and LISTINGS times each `-m session` and `-m session -P 3` with N sessions
# ("listing" records: one command is tens of ms, which the machine's noise moves by
# a fifth, so it is taken several times); the daemon's RSS idle and with
# N sessions; the CPU time of the daemon (and its system part) and of the whole
# guest over -L all and -U all, which tells computing from waiting. For goiscsi also
# the kernel's own time for one session ("kernel" record: the netlink requests of
# an uncontended login and logout, from goiscsid's debug log): the kernel handles
# iSCSI netlink requests one at a time, so N of them bound -L all and -U all from
# below for any initiator.
# Then, goiscsi only: a login with node.session.autoscan_en = No to a target of one
# LUN and to one of MANY_LUNS ("autoscan" records), and for each size of BIG that
# many targets logged in and out at once, every block device present ("big"
# record; a size PxT is T targets of P portals each, P x T sessions).
# Env: N (64), DELAY (50ms; "0" for none), ROUNDS (3), LISTINGS (5), MANY_LUNS (128; 0 skips),
# BIG (sizes, "256"; "256 1024 4x64" for several; 0 skips), PROFILE=1 (goiscsid's CPU profile over round 1's -L all and
# -U all; PROFILE=trace its execution trace instead: taken together, the trace's
# own cost would be most of the profile), TRACE=1 (the kernel's side, both initiators:
# ftrace function_graph of its netlink handler iscsi_if_rx and of the session
# unbind work, 3 calls deep, over each -L all and -U all, sent back as
# trace-INITIATOR-L|U-roundR.txt: each request's time in the kernel, and the
# gaps between requests, which are the initiator's; it slows both).
# goiscsid's log of each round is sent back (vmrun -files DIR), with the
# profiles and traces.
N=${N:-64}
ROUNDS=${ROUNDS:-3}
LISTINGS=${LISTINGS:-5}
DELAY=${DELAY:-50ms}
MANY_LUNS=${MANY_LUNS:-128}
BIG=${BIG:-256}
# most is the largest number of targets a size of BIG needs.
most=$N
for size in $BIG; do
	t=${size#*x}
	[ "$t" -gt "$most" ] && most=$t
done
B=iqn.2003-01.org.example:bench
P=127.0.0.1:3260

lio_enable() { echo "$2" >"$(lio_tpg "$1")/enable" || fail "lio: enable=$2 $1"; }

# The targets of the later phases exist from the start, disabled: LIO leaves a
# disabled target out of SendTargets, so -L all sees the N targets alone.
i=0
while [ $i -lt "$most" ]; do
	lio_target $B$i $P 1 1
	[ $i -ge "$N" ] && lio_enable $B$i 0
	i=$((i + 1))
done
if [ "$MANY_LUNS" -gt 0 ]; then
	lio_target $B-few $P 1 1
	lio_target $B-many $P "$MANY_LUNS" 1
	lio_enable $B-few 0
	lio_enable $B-many 0
fi

# blocks counts the sessions' block devices with one glob and no process: the
# poll must not load the guest whose logins it times.
blocks() {
	set -- /sys/class/iscsi_session/session*/device/target*/*:*:*:*/block/*
	[ -e "$1" ] && echo $# || echo 0
}
none() { [ "$(session_count)" = 0 ]; }

# start INITIATOR starts its daemon on an empty node database and discovers the
# enabled targets (without delay: discovery is not measured).
start() {
	INITIATOR=$1
	rm -rf /etc/iscsi/nodes /etc/iscsi/send_targets
	if [ "$1" = goiscsi ]; then
		# At its default log level, as installed: iscsid runs at its own.
		ADM=$GOISCSIADM
		rm -rf /tmp/prof
		if [ -n "${PROFILE:-}" ] && [ "$r" = 1 ]; then
			goiscsid_start -profile /tmp/prof
		else
			goiscsid_start -d 0
		fi
	else
		initiator_start
	fi
	$ADM -m discovery -t st -p $P >/dev/null 2>/tmp/discovery.err || fail "$1: discovery: $(tail -n 3 /tmp/discovery.err)"
	[ "$DELAY" != 0 ] && netem delay "$DELAY"
}

stop() {
	netem_clear
	daemon_stop
	GOISCSID_PID=
}

# profile starts or stops goiscsid's capture when PROFILE is set (round 1).
profile() {
	[ -n "${PROFILE:-}" ] && [ "$r" = 1 ] && [ "$INITIATOR" = goiscsi ] || return 0
	captures() { grep -c -E 'msg="(CPU profile|execution trace) (started|stopped)"' /tmp/goiscsid.log; }
	before=$(captures)
	if [ "$PROFILE" = trace ]; then kill -USR2 "$DAEMON_PID"; else kill -USR1 "$DAEMON_PID"; fi
	# goiscsid logs the toggle once the files are written (or the capture runs).
	toggled() { [ "$(captures)" -gt "$before" ]; }
	wait_until 30 toggled || fail "goiscsid did not log its profile capture"
}

# kernel_times SID prints "LOGIN_MS LOGOUT_MS CONNECT_MS SCAN_MS" from goiscsid's
# log lines (info level, as it runs installed): the kernel's netlink requests of
# session SID's login (creating and binding, then setting the negotiated values
# and starting) and of its logout (unbinding and the teardown), its TCP connect,
# and the kernel's time for its login scan (the sysfs write returns when the
# kernel has probed every LUN).
kernel_times() {
	awk -v sid="sid=$1" '
		function val(k,    i) {
			for (i = 1; i <= NF; i++)
				if (index($i, k "=") == 1) return substr($i, length(k) + 2)
			return 0
		}
		{
			hit = 0
			for (i = 1; i <= NF; i++) if ($i == sid) hit = 1
			if (!hit) next
		}
		/msg="connection is operational now"/ {
			lin = val("times.kernel_ms") + val("times.start_ms"); conn = val("times.connect_ms")
		}
		/msg="logged out"/ { lout = val("times.kernel_ms") }
		/msg=scan .*trigger=login/ { scan = val("took_ms") }
		END { printf "%.1f %.1f %.1f %.1f\n", lin, lout, conn, scan }' /tmp/goiscsid.log
}

T=/sys/kernel/tracing
[ -n "${TRACE:-}" ] && mount -t tracefs nodev $T
trace_on() {
	[ -n "${TRACE:-}" ] || return 0
	echo 0 >$T/tracing_on
	echo function_graph >$T/current_tracer
	echo iscsi_if_rx >$T/set_graph_function
	echo __iscsi_unbind_session >>$T/set_graph_function
	echo 3 >$T/max_graph_depth
	echo funcgraph-tail >$T/trace_options
	echo funcgraph-abstime >$T/trace_options
	echo 65536 >$T/buffer_size_kb
	echo >$T/trace
	echo 1 >$T/tracing_on
}
trace_off() {
	[ -n "${TRACE:-}" ] || return 0
	echo 0 >$T/tracing_on
	cat $T/trace >/tmp/trace.txt
	emit_file "trace-$1.txt" /tmp/trace.txt
}

# phase TAG NAME CMD...: runs CMD (run_capture NAME), traced when TRACE is set,
# and sets ms (from t0, which stays set), cpu and sys (the daemon's CPU time and
# its system part) and busy (the guest's CPU time) for it.
phase() {
	tag=$1
	shift
	c0=$(cpu_ms $DAEMON_PID)
	s0=$(sys_ms $DAEMON_PID)
	b0=$(busy_ms)
	trace_on
	clock t0
	timed ms run_capture "$@"
	trace_off "$INITIATOR-$tag-round$r"
	cpu=$(($(cpu_ms $DAEMON_PID) - c0))
	sys=$(($(sys_ms $DAEMON_PID) - s0))
	busy=$(($(busy_ms) - b0))
}

# measure INITIATOR ROUND: one round of the storm for one initiator.
measure() {
	start "$1"
	idle_kb=$(rss_kb $DAEMON_PID)
	clock t0
	timed adm_ms $ADM -m node -T ${B}0 -p $P --login >/dev/null || fail "$1: single login"
	one() { [ "$(blocks)" = 1 ]; }
	wait_until 60 one || fail "$1: single login: no block device"
	single=$(ms_since $t0)
	sid=$(session_sid ${B}0)
	$ADM -m node -T ${B}0 -p $P --logout >/dev/null || fail "$1: single logout"
	wait_until 60 none || fail "$1: single logout left a session"
	if [ "$1" = goiscsi ]; then
		kernel_times "$sid" >/tmp/kernel-times
		read -r kin kout kconn kscan </tmp/kernel-times
		emit kernel round "$r" login_ms "$kin" logout_ms "$kout" connect_ms "$kconn" scan_ms "$kscan"
	fi

	profile
	phase L login_all $ADM -m node -L all
	login_all=$ms lcpu=$cpu lsys=$sys lbusy=$busy
	[ "$CAP_RC" = 0 ] || fail "$1: -L all exit $CAP_RC: $(tail -n 3 $CAP_ERR)"
	all() { [ "$(blocks)" = "$N" ]; }
	wait_until 300 all || fail "$1: -L all: $(blocks) of $N block devices"
	devices=$(ms_since $t0)
	profile
	sessions_kb=$(rss_kb $DAEMON_PID)
	# The listings are timed on a settled system, not beside the kernel's
	# probes of the disks that just appeared.
	sleep 2
	i=1
	while [ $i -le "$LISTINGS" ]; do
		timed list $ADM -m session >/dev/null || fail "$1: -m session"
		timed list3 $ADM -m session -P 3 >/dev/null || fail "$1: -m session -P 3"
		emit listing initiator "$1" round "$r" sample "$i" session_ms "$list" session_p3_ms "$list3"
		i=$((i + 1))
	done
	profile
	phase U logout_all $ADM -m node -U all
	logout_all=$ms ucpu=$cpu usys=$sys ubusy=$busy
	[ "$CAP_RC" = 0 ] || fail "$1: -U all exit $CAP_RC: $(tail -n 3 $CAP_ERR)"
	wait_until 120 none || fail "$1: -U all left $(session_count) sessions"
	profile
	emit bench initiator "$1" round "$r" targets "$N" single_ms "$single" single_adm_ms "$adm_ms" \
		login_all_ms "$login_all" devices_ms "$devices" \
		logout_all_ms "$logout_all" rss_idle_kb "$idle_kb" rss_sessions_kb "$sessions_kb" \
		login_all_daemon_cpu_ms "$lcpu" login_all_daemon_sys_ms "$lsys" login_all_busy_ms "$lbusy" \
		logout_all_daemon_cpu_ms "$ucpu" logout_all_daemon_sys_ms "$usys" logout_all_busy_ms "$ubusy"
	stop
	if [ "$1" = goiscsi ]; then
		emit_file "goiscsid-round$r.log" /tmp/goiscsid.log
		if [ -n "${PROFILE:-}" ] && [ "$r" = 1 ]; then
			for f in /tmp/prof/*; do [ -f "$f" ] && emit_file "${f##*/}" "$f"; done
		fi
	fi
}

r=1
while [ $r -le "$ROUNDS" ]; do
	if [ $((r % 2)) = 1 ]; then order="stock goiscsi"; else order="goiscsi stock"; fi
	for ini in $order; do measure $ini; done
	r=$((r + 1))
done

if [ "$MANY_LUNS" -gt 0 ]; then
	lio_enable $B-few 1
	lio_enable $B-many 1
	r=0
	start goiscsi
	for t in few many; do
		$ADM -m node -T $B-$t -p $P -o update -n node.session.autoscan_en -v No || fail "autoscan_en = No on $t"
	done
	lun0() { [ -n "$(lun_block "$(session_sid $B-$t)" 0)" ]; }
	r=1
	while [ $r -le "$ROUNDS" ]; do
		for t in few many; do
			t0=$(now_us)
			$ADM -m node -T $B-$t -p $P --login >/dev/null || fail "autoscan login to $t"
			wait_until 60 lun0 || fail "autoscan login to $t: no LUN 0"
			ms=$(ms_since $t0)
			[ "$(blocks)" = 1 ] || fail "autoscan_en = No login to $t: $(blocks) block devices, want LUN 0 alone"
			$ADM -m node -T $B-$t -p $P --logout >/dev/null || fail "autoscan logout of $t"
			wait_until 60 none || fail "autoscan logout of $t left a session"
			emit autoscan target "$t" round "$r" ms "$ms"
		done
		r=$((r + 1))
	done
	stop
	lio_enable $B-few 0
	lio_enable $B-many 0
fi

# big SIZE: goiscsi logs in to SIZE's sessions at once, every block device, the
# listings, out again; its daemon's CPU over -L all and -U all.
big() {
	case $1 in
	*x*) portals=${1%x*} targets=${1#*x} ;;
	*) portals=1 targets=$1 ;;
	esac
	sessions=$((portals * targets))
	log "big $1: $targets targets on $portals portals"
	i=0
	while [ $i -lt "$most" ]; do
		if [ $i -lt "$targets" ]; then lio_enable $B$i 1; else lio_enable $B$i 0; fi
		# A size's extra portals are 127.0.0.1:3261 and up; an earlier size's
		# that this one has not go.
		p=1
		while [ $p -lt "$portals" ]; do
			[ $i -lt "$targets" ] && lio_portal $B$i 127.0.0.1:$((3260 + p))
			p=$((p + 1))
		done
		for np in "$(lio_tpg $B$i)"/np/127.0.0.1:326[1-9]; do
			[ -d "$np" ] && [ $((${np##*:} - 3260)) -ge "$portals" ] && rmdir "$np"
		done
		i=$((i + 1))
	done
	r=0
	start goiscsi
	log "big $1: discovered $(find /etc/iscsi/nodes -mindepth 2 -maxdepth 2 | wc -l) portals; -L all"
	c0=$(cpu_ms $DAEMON_PID)
	s0=$(sys_ms $DAEMON_PID)
	b0=$(busy_ms)
	t0=$(now_us)
	run_capture big_login $ADM -m node -L all
	login_all=$(ms_since $t0)
	lcpu=$(($(cpu_ms $DAEMON_PID) - c0))
	lsys=$(($(sys_ms $DAEMON_PID) - s0))
	lbusy=$(($(busy_ms) - b0))
	[ "$CAP_RC" = 0 ] || fail "$1: -L all exit $CAP_RC: $(tail -n 3 $CAP_ERR)"
	log "big $1: -L all exit $CAP_RC after $login_all ms, $(session_count) sessions"
	every() { [ "$(blocks)" = "$sessions" ]; }
	wait_until 900 every || fail "$1: $(blocks) of $sessions block devices"
	devices=$(ms_since $t0)
	kb=$(rss_kb $DAEMON_PID)
	t0=$(now_us)
	run_capture big_session $ADM -m session
	session_ms=$(ms_since $t0)
	[ "$CAP_RC" = 0 ] && [ "$(wc -l <$CAP_OUT)" = "$sessions" ] || fail "$1: -m session exit $CAP_RC, $(wc -l <$CAP_OUT) lines"
	t0=$(now_us)
	run_capture big_p3 $ADM -m session -P 3
	p3_ms=$(ms_since $t0)
	[ "$CAP_RC" = 0 ] || fail "$1: -m session -P 3 exit $CAP_RC"
	log "big $1: -U all"
	c0=$(cpu_ms $DAEMON_PID)
	s0=$(sys_ms $DAEMON_PID)
	b0=$(busy_ms)
	t0=$(now_us)
	run_capture big_logout $ADM -m node -U all
	logout_all=$(ms_since $t0)
	ucpu=$(($(cpu_ms $DAEMON_PID) - c0))
	usys=$(($(sys_ms $DAEMON_PID) - s0))
	ubusy=$(($(busy_ms) - b0))
	[ "$CAP_RC" = 0 ] || fail "$1: -U all exit $CAP_RC: $(tail -n 3 $CAP_ERR)"
	wait_until 600 none || fail "$1: -U all left $(session_count) sessions"
	emit big size "$1" targets "$targets" portals "$portals" sessions "$sessions" \
		login_all_ms "$login_all" devices_ms "$devices" logout_all_ms "$logout_all" rss_kb "$kb" \
		session_ms "$session_ms" p3_ms "$p3_ms" login_all_daemon_cpu_ms "$lcpu" logout_all_daemon_cpu_ms "$ucpu" \
		login_all_daemon_sys_ms "$lsys" logout_all_daemon_sys_ms "$usys" \
		login_all_busy_ms "$lbusy" logout_all_busy_ms "$ubusy"
	stop
	emit_file "goiscsid-big-$1.log" /tmp/goiscsid.log
}

if [ "$BIG" != 0 ]; then
	for size in $BIG; do big "$size"; done
fi
