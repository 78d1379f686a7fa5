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
# 128 LUNs, wildcard against LUN by LUN.
# Env: INITIATOR (stock or goiscsi), ROUNDS (default 9).
IQN=iqn.2003-01.org.example:rescan
P=127.0.0.1:3260
lio_target $IQN $P 1 8
initiator_start
$ADM -m discovery -t st -p $P >/dev/null || fail "discovery"
$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login"
SID=$(session_sid $IQN)
HOST=$(sessions | awk -v s="$SID" '$1 == s {print $2}')
has_lun() { [ -n "$(lun_block "$SID" "$1")" ]; }
sdev_exists() { [ -e "/sys/class/scsi_device/$HOST:0:0:$1" ]; }
sdev_gone() { ! sdev_exists "$1"; }
wait_until 20 has_lun 0 || fail "LUN 0 did not appear"
# detach L: what the consumers do on the host, the SCSI device deleted.
detach() {
	echo 1 >"/sys/class/scsi_device/$HOST:0:0:$1/device/delete" || fail "delete LUN $1"
	wait_until 10 sdev_gone "$1" || fail "LUN $1 not deleted"
}
# rescan CONSUMER: that consumer's own rescan command line.
rescan() {
	case $1 in
	csi) $ADM -m node -T $IQN -p $P -R >/dev/null 2>&1 ;;
	libvirt) $ADM -m session -r "$SID" -R >/dev/null 2>&1 ;;
	democratic) $ADM -m session -r "$SID" --rescan >/dev/null 2>&1 ;;
	esac
}
# held: the LUNs goiscsid shows as held back for the session (none for stock).
held() { $ADM -m session -r "$SID" -P 1 2>/dev/null | awk '/Held Back LUN:/ {print $4}' | tr '\n' ' '; }
nothing_held() { [ -z "$(held)" ]; }

stale=0
missing1=0
missing2=0
wait_ms=0
i=0
t0=$(now_us)
while [ "$i" -lt "${ROUNDS:-9}" ]; do
	case $((i % 3)) in 0) c=csi ;; 1) c=libvirt ;; 2) c=democratic ;; esac
	i=$((i + 1))
	lio_add_lun $IQN 1 8
	rescan $c
	wait_until 10 has_lun 1 || missing1=$((missing1 + 1))
	sdev_exists 1 && detach 1
	lio_add_lun $IQN 2 8
	rescan $c
	wait_until 10 has_lun 2 || missing2=$((missing2 + 1))
	if sdev_exists 1; then
		stale=$((stale + 1))
		detach 1
	fi
	lio_del_lun $IQN 1
	sdev_exists 2 && detach 2
	lio_del_lun $IQN 2
	# goiscsid forgets a held LUN once the array stops reporting it (it asks
	# every 5 s): the next round's LUN 1 is a new volume its rescan must find.
	tw=$(now_us)
	[ "${INITIATOR:-stock}" = stock ] || wait_until 20 nothing_held || fail "round $i: still held: $(held)"
	wait_ms=$((wait_ms + ($(now_us) - tw) / 1000))
done
emit race rounds "$i" stale "$stale" lun1_missing "$missing1" lun2_missing "$missing2" ms "$(ms_since $t0)" \
	forget_wait_ms "$wait_ms" list "$(session_devices "$SID" | tr '\n' ';')"

# LUN 1 held back (removed while exported) for each variant; stale_<variant> is
# 1 when a LUN 1 device is there after it.
lio_add_lun $IQN 1 8
rescan csi
wait_until 10 has_lun 1 || fail "LUN 1 not attached"
detach 1
emit held_after_detach held "$(held)"
variant() { # NAME: emits whether LUN 1 came back, and deletes it if so
	if sdev_exists 1; then
		emit variant name "$1" stale 1 held "$(held)"
		detach 1
	else
		emit variant name "$1" stale 0 held "$(held)"
	fi
}
# A logout and login (auto: the login scan).
$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login again"
SID=$(session_sid $IQN)
HOST=$(sessions | awk -v s="$SID" '$1 == s {print $2}')
wait_until 20 has_lun 0 || fail "LUN 0 did not come back after the login"
variant relogin
# A connection drop: the kernel reports it, the daemon logs in again, the
# consumer rescans.
errs=$(dmesg | grep -c 'detected conn error')
# The network drops until the NOP-Outs time out (5 s + 5 s by default), as
# the recovery scenario drops it.
netem loss 100%
conn_error_seen() { [ "$(dmesg | grep -c 'detected conn error')" -gt "$errs" ]; }
logged_in() { [ "$(cat /sys/class/iscsi_session/session$SID/state 2>/dev/null)" = LOGGED_IN ]; }
wait_until 60 conn_error_seen || fail "no connection error with the network down"
netem_clear
wait_until 60 logged_in || fail "session not back after the drop"
rescan libvirt
variant conn_drop
# An AEN under auto: LIO reports the new LUN 3 as a unit attention on the next
# command, and the daemon scans.
lio_add_lun $IQN 3 8
dd if="/dev/$(lun_block "$SID" 0)" of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null
if [ "${INITIATOR:-stock}" != stock ]; then
	wait_until 15 has_lun 3 || fail "LUN 3 not added after the unit attention"
fi
variant unit_attention
# The daemon killed and started again: its start scan (auto), then a rescan.
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
initiator_start
wait_until 20 sh -c "$ADM -m session -r $SID >/dev/null 2>&1" || fail "session not listed after the restart"
rescan democratic
variant daemon_restart
if [ "${INITIATOR:-stock}" != stock ]; then
	# A removal while the daemon is not running is found when it starts.
	kill -KILL "$DAEMON_PID"
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
	detach 3
	initiator_start
	wait_until 20 sh -c "$ADM -m session -r $SID >/dev/null 2>&1" || fail "session not listed after the restart"
	rescan csi
	if sdev_exists 3; then down_stale=1; detach 3; else down_stale=0; fi
	emit variant name removed_while_down stale "$down_stale" held "$(held)"
fi
# Stock's iscsiadm -R writes the wildcard to sysfs itself: goiscsid cannot stop
# it; it sees LUN 1 come back through a scan it did not make and lets it go.
$STOCK_ISCSIADM -m session -r "$SID" -R >/dev/null 2>&1
[ -z "$(held | grep -w 1)" ] || ! sdev_exists 1 || fail "LUN 1 still held after stock's -R brought it back"
variant stock_rescan_beside
detach_if() { sdev_exists "$1" && detach "$1"; return 0; }
detach_if 1
# An explicit scan of the one LUN is the way back.
if [ "${INITIATOR:-stock}" != stock ]; then
	$ADM -m session -r "$SID" --scan-lun 1 >/dev/null || fail "--scan-lun 1"
	wait_until 10 has_lun 1 && sl=1 || sl=0
	emit scan_lun added "$sl" held "$(held)"
fi
# Stock iscsid, started again above, logs the session in again and refuses a
# logout (32) until that is done.
logout() { $ADM -m node -T $IQN -p $P --logout >/dev/null 2>&1; }
wait_until 30 logout || fail "logout"

# 128 LUNs: the login scan's time with nothing held (the kernel's wildcard,
# stock's scan too) and with one LUN held (LUN by LUN), until 127 devices are
# there; goiscsi only.
[ "${INITIATOR:-stock}" = stock ] && { daemon_stop; exit 0; }
BIG=iqn.2003-01.org.example:rescan-big
lio_target $BIG 127.0.0.1:3262 128 1
$ADM -m discovery -t st -p 127.0.0.1:3262 >/dev/null || fail "discovery big"
count_devs() { [ "$(session_devices "$BSID" | awk '$2 != "-"' | wc -l)" -ge "$1" ]; }
big_login() {
	t1=$(now_us)
	$ADM -m node -T $BIG -p 127.0.0.1:3262 --login >/dev/null || fail "login big"
	BSID=$(session_sid $BIG)
	wait_until 120 count_devs "$1" || fail "big: $(session_devices "$BSID" | wc -l) devices, want $1"
	BIG_MS=$(ms_since $t1)
}
# A first login warms LIO's backstores up (the first one is several times
# slower, whoever scans); the second is the wildcard's figure.
big_login 128
$ADM -m node -T $BIG -p 127.0.0.1:3262 --logout >/dev/null || fail "logout big"
big_login 128
wild_ms=$BIG_MS
BHOST=$(sessions | awk -v s="$BSID" '$1 == s {print $2}')
echo 1 >"/sys/class/scsi_device/$BHOST:0:0:127/device/delete"
$ADM -m node -T $BIG -p 127.0.0.1:3262 --logout >/dev/null || fail "logout big"
big_login 127
emit big luns 128 wildcard_ms "$wild_ms" lun_by_lun_ms "$BIG_MS" held "$($ADM -m session -r "$BSID" -P 1 2>/dev/null | awk '/Held Back LUN:/ {print $4}')"
$ADM -m node -T $BIG -p 127.0.0.1:3262 --logout >/dev/null || fail "logout big"
grep -E 'held|scan goiscsid did not make|no longer reported' /tmp/goiscsid.log >/tmp/held.log 2>/dev/null && emit_file held.log /tmp/held.log
daemon_stop
