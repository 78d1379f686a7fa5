# The seed's race for consumers that rescan whole targets (issue 20), with their
# own command sequences, unmodified: csi-lib-iscsi (-m node -T -p -R before each
# attach), libvirt (-m session -r SID -R) and democratic-csi (-m session -r SID
# --rescan), in turn. Each round: an array exports LUN 1 (a new volume), the
# consumer attaches it with its rescan; it detaches LUN 1 (deletes the SCSI
# device) while the array still exports it; it attaches LUN 2 with its rescan;
# only then the array unexports LUN 1. A LUN 1 device after that rescan is stale.
# Then the same held-back LUN against a logout and login, a connection drop and
# relogin, an AEN under auto, a SIGKILL and restart of the daemon, stock's
# iscsiadm -R beside goiscsid, and --scan-lun; and the time of a login scan of
# 128 LUNs, wildcard against LUN by LUN (goiscsi only).
# Each initiator of INITIATORS in turn in one boot, side by side against the
# same kernel and target: each starts its daemon on an empty node database and
# ends logged out, its daemon stopped and the target back to LUN 0 alone.
# Every record names its initiator.
# Env: INITIATORS (default "stock goiscsi"), ROUNDS (default 9).
IQN=iqn.2003-01.org.example:rescan
P=127.0.0.1:3260
lio_target $IQN $P 1 8

has_lun() { [ -n "$(lun_block "$SID" "$1")" ]; }
sdev_exists() { [ -e "/sys/class/scsi_device/$HOST:0:0:$1" ]; }
sdev_gone() { ! sdev_exists "$1"; }
logged_in() { [ "$(cat /sys/class/iscsi_session/session$SID/state 2>/dev/null)" = LOGGED_IN ]; }
no_session() { [ -z "$(session_sid $IQN)" ]; }
# session_found sets SID and HOST to the session to $IQN.
session_found() {
	SID=$(session_sid $IQN)
	HOST=$(sessions | awk -v s="$SID" '$1 == s {print $2}')
	[ -n "$SID" ] || fail "$WHO: no session to $IQN"
}
# remit TYPE [KEY VALUE]... is emit with the initiator of this pass.
remit() {
	_re_t=$1
	shift
	emit "$_re_t" initiator "$WHO" "$@"
}
# detach L: what the consumers do on the host, the SCSI device deleted.
detach() {
	echo 1 >"/sys/class/scsi_device/$HOST:0:0:$1/device/delete" || fail "$WHO: delete LUN $1"
	wait_until 10 sdev_gone "$1" || fail "$WHO: LUN $1 not deleted"
}
detach_if() { sdev_exists "$1" && detach "$1"; return 0; }
# rescan CONSUMER: that consumer's own rescan command line (stockadm: stock's
# iscsiadm, whoever the daemon), which must succeed. The kernel skips the scan
# of a session that is not logged in without an error, and stock's iscsiadm
# does not look at what its write to the scan file returned: a rescan in a
# relogin exits 0 having added nothing. So the session must be logged in first
# (and a daemon that relogs in at its start must be done: see restarted).
rescan() {
	case $1 in
	csi) set -- "$1" $ADM -m node -T $IQN -p $P -R ;;
	libvirt) set -- "$1" $ADM -m session -r "$SID" -R ;;
	democratic) set -- "$1" $ADM -m session -r "$SID" --rescan ;;
	stockadm) set -- "$1" $STOCK_ISCSIADM -m session -r "$SID" -R ;;
	*) fail "rescan: no consumer $1" ;;
	esac
	_rs_c=$1
	shift
	wait_until 60 logged_in || fail "$WHO: rescan $_rs_c: session $SID not logged in: $(cat /sys/class/iscsi_session/session$SID/state 2>&1)"
	"$@" >/tmp/rescan.out 2>&1 || fail "$WHO: rescan $_rs_c ($*): exit $?: $(tail -n 3 /tmp/rescan.out)"
}
# held: the LUNs goiscsid shows as held back for the session (none for
# stock); a listing that fails shows as its error, never as nothing held.
held() {
	_hd=$($ADM -m session -r "$SID" -P 1 2>&1) || { echo "(-P 1: $_hd)"; return 0; }
	echo "$_hd" | awk '/Held Back LUN:/ {print $4}' | tr '\n' ' '
}
nothing_held() { [ -z "$(held)" ]; }
lun1_released() { ! held | grep -qw 1; }
# restarted: the daemon started again has the session: goiscsid lists it;
# stock iscsid lists it at once but first logs it in again (its sync at start
# stops the connection and reopens it), and a rescan before that is done adds
# nothing: its log says when it is.
restarted() {
	case $WHO in
	stock) grep -q "connection$SID:0 is operational after recovery" /tmp/iscsid.log ;;
	*) $ADM -m session -r "$SID" >/dev/null 2>&1 ;;
	esac
}
# variant NAME: emits whether LUN 1 came back, and deletes it if so.
variant() {
	if sdev_exists 1; then
		remit variant name "$1" stale 1 held "$(held)"
		detach 1
	else
		remit variant name "$1" stale 0 held "$(held)"
	fi
}

# race: the consumers' rounds.
race() {
	stale=0
	missing1=0
	missing2=0
	wait_ms=0
	i=0
	round_ms=
	t0=$(now_us)
	while [ "$i" -lt "${ROUNDS:-9}" ]; do
		clock tr
		case $((i % 3)) in 0) c=csi ;; 1) c=libvirt ;; 2) c=democratic ;; esac
		i=$((i + 1))
		lio_add_lun $IQN 1 8
		rescan $c
		wait_until 10 has_lun 1 || missing1=$((missing1 + 1))
		detach_if 1
		lio_add_lun $IQN 2 8
		rescan $c
		wait_until 10 has_lun 2 || missing2=$((missing2 + 1))
		if sdev_exists 1; then
			stale=$((stale + 1))
			detach 1
		fi
		lio_del_lun $IQN 1
		detach_if 2
		lio_del_lun $IQN 2
		# goiscsid forgets a held LUN once the array stops reporting it
		# (it asks every 5 s): the next round's LUN 1 is a new volume its
		# rescan must find.
		tw=$(now_us)
		[ "$WHO" = stock ] || wait_until 20 nothing_held || fail "$WHO: round $i: still held: $(held)"
		wait_ms=$((wait_ms + ($(now_us) - tw) / 1000))
		round_ms="$round_ms${round_ms:+ }$(ms_since "$tr")"
	done
	remit race rounds "$i" stale "$stale" lun1_missing "$missing1" lun2_missing "$missing2" ms "$(ms_since $t0)" \
		round_ms "$round_ms" forget_wait_ms "$wait_ms" list "$(session_devices "$SID" | tr '\n' ';')"
}

# variants: LUN 1 held back (removed while exported) for each; stale_<variant>
# is 1 when a LUN 1 device is there after it.
variants() {
	lio_add_lun $IQN 1 8
	rescan csi
	wait_until 10 has_lun 1 || fail "$WHO: LUN 1 not attached"
	detach 1
	remit held_after_detach held "$(held)"
	# A logout and login (auto: the login scan).
	$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "$WHO: logout"
	$ADM -m node -T $IQN -p $P --login >/dev/null || fail "$WHO: login again"
	session_found
	wait_until 20 has_lun 0 || fail "$WHO: LUN 0 did not come back after the login"
	variant relogin
	# A connection drop: the kernel reports it, the daemon logs in again,
	# the consumer rescans. The network drops until the NOP-Outs time out
	# (5 s + 5 s by default), as the recovery scenario drops it.
	errs=$(dmesg | grep -c 'detected conn error')
	netem loss 100%
	conn_error_seen() { [ "$(dmesg | grep -c 'detected conn error')" -gt "$errs" ]; }
	wait_until 60 conn_error_seen || fail "$WHO: no connection error with the network down"
	netem_clear
	wait_until 60 logged_in || fail "$WHO: session not back after the drop"
	rescan libvirt
	variant conn_drop
	# An AEN under auto: LIO reports the new LUN 3 as a unit attention on
	# the next command, and the daemon scans (stock does not).
	lio_add_lun $IQN 3 8
	dd if="/dev/$(lun_block "$SID" 0)" of=/dev/null bs=4k count=1 iflag=direct 2>/tmp/dd.err ||
		fail "$WHO: read of LUN 0: $(cat /tmp/dd.err)"
	if [ "$WHO" != stock ]; then
		wait_until 15 has_lun 3 || fail "$WHO: LUN 3 not added after the unit attention"
	fi
	variant unit_attention
	# The daemon killed and started again: its start scan (auto), then a
	# rescan.
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
	initiator_start
	wait_until 60 restarted || fail "$WHO: session not taken over after the restart: $(tail -n 5 /tmp/iscsid.log /tmp/goiscsid.log 2>&1)"
	rescan democratic
	variant daemon_restart
	if [ "$WHO" != stock ]; then
		# A removal while the daemon is not running is found when it
		# starts.
		kill -KILL "$DAEMON_PID"
		wait "$DAEMON_PID" 2>/dev/null
		DAEMON_PID=
		detach 3
		initiator_start
		wait_until 60 restarted || fail "$WHO: session not listed after the restart"
		rescan csi
		if sdev_exists 3; then down_stale=1; detach 3; else down_stale=0; fi
		remit variant name removed_while_down stale "$down_stale" held "$(held)"
	fi
	# Stock's iscsiadm -R writes the wildcard to sysfs itself: goiscsid
	# cannot stop it; it sees LUN 1 come back through a scan it did not
	# make and lets it go.
	rescan stockadm
	if sdev_exists 1; then
		wait_until 10 lun1_released || fail "$WHO: LUN 1 still held after stock's -R brought it back"
	fi
	variant stock_rescan_beside
	# An explicit scan of the one LUN is the way back.
	if [ "$WHO" != stock ]; then
		$ADM -m session -r "$SID" --scan-lun 1 >/dev/null || fail "$WHO: --scan-lun 1"
		wait_until 10 has_lun 1 && sl=1 || sl=0
		remit scan_lun added "$sl" held "$(held)"
	fi
	$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "$WHO: logout"
}

# big: 128 LUNs, the login scan's time with nothing held (the kernel's
# wildcard, stock's scan too) and with one LUN held (LUN by LUN), until 127
# devices are there.
big() {
	BIG=iqn.2003-01.org.example:rescan-big
	lio_target $BIG 127.0.0.1:3262 128 1
	$ADM -m discovery -t st -p 127.0.0.1:3262 >/dev/null || fail "$WHO: discovery big"
	count_devs() { [ "$(session_devices "$BSID" | awk '$2 != "-"' | wc -l)" -ge "$1" ]; }
	big_login() {
		t1=$(now_us)
		$ADM -m node -T $BIG -p 127.0.0.1:3262 --login >/dev/null || fail "$WHO: login big"
		BSID=$(session_sid $BIG)
		wait_until 120 count_devs "$1" || fail "$WHO: big: $(session_devices "$BSID" | wc -l) devices, want $1"
		BIG_MS=$(ms_since $t1)
	}
	# A first login warms LIO's backstores up (the first one is several
	# times slower, whoever scans); the second is the wildcard's figure.
	big_login 128
	$ADM -m node -T $BIG -p 127.0.0.1:3262 --logout >/dev/null || fail "$WHO: logout big"
	big_login 128
	wild_ms=$BIG_MS
	BHOST=$(sessions | awk -v s="$BSID" '$1 == s {print $2}')
	echo 1 >"/sys/class/scsi_device/$BHOST:0:0:127/device/delete" || fail "$WHO: delete big LUN 127"
	$ADM -m node -T $BIG -p 127.0.0.1:3262 --logout >/dev/null || fail "$WHO: logout big"
	big_login 127
	remit big luns 128 wildcard_ms "$wild_ms" lun_by_lun_ms "$BIG_MS" held "$($ADM -m session -r "$BSID" -P 1 2>/dev/null | awk '/Held Back LUN:/ {print $4}')"
	$ADM -m node -T $BIG -p 127.0.0.1:3262 --logout >/dev/null || fail "$WHO: logout big"
}

for WHO in ${INITIATORS:-stock goiscsi}; do
	INITIATOR=$WHO
	log "rescan: $WHO"
	initiator_start
	$ADM -m discovery -t st -p $P >/dev/null || fail "$WHO: discovery"
	$ADM -m node -T $IQN -p $P --login >/dev/null || fail "$WHO: login"
	session_found
	wait_until 20 has_lun 0 || fail "$WHO: LUN 0 did not appear"
	race
	variants
	[ "$WHO" = stock ] || big
	[ "$WHO" = stock ] || { grep -E 'held|scan goiscsid did not make|no longer reported' /tmp/goiscsid.log >/tmp/held.log 2>/dev/null && emit_file "held-$WHO.log" /tmp/held.log; }
	# The next initiator starts where this one did: no session, no node
	# records, LUN 0 alone on the target.
	wait_until 30 no_session || fail "$WHO: a session to $IQN is left after the logout"
	$ADM -m node -o delete >/dev/null || fail "$WHO: delete the node records"
	lio_del_lun $IQN 1
	lio_del_lun $IQN 3
	daemon_stop
done
