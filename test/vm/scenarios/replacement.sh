# replacement_timeout: the target goes away (connection dropped, logins refused
# with 0x0301 "service unavailable") during a write. Down for less than the
# timeout: the write pauses and completes. Down for longer: the kernel fails the
# I/O cleanly; the initiator keeps trying, and once the target is back the session
# and its device return and take I/O again.
# Env: INITIATOR (stock|goiscsi), TMO (replacement_timeout, default 6).
IQN=iqn.2003-01.org.example:replacement
P=127.0.0.1:3261
TMO=${TMO:-6}
cat >/tmp/target.json <<JSON
{"targets": [{"name": "$IQN", "portal_groups": [{"tag": 1, "portals": ["$P"]}],
  "luns": [{"number": 0, "size": "32MiB"}], "lun_change_ua": false}]}
JSON
testtarget_start /tmp/target.json
initiator_start
$ADM -m discovery -t st -p $P >/dev/null || fail "discovery"
$ADM -m node -T $IQN -p $P -o update -n node.session.timeo.replacement_timeout -v "$TMO" || fail "update"
$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login"
SID=$(session_sid $IQN)
has() { [ -n "$(lun_block "$SID" 0)" ]; }
wait_until 20 has || fail "no block device"
DEV=$(lun_block "$SID" 0)
$TT wait-sessions -target $IQN -n 1 -timeout 10s >/dev/null || fail "target sees no session"
state() { cat /sys/class/iscsi_session/session$SID/state; }
logged_in() { [ "$(state)" = LOGGED_IN ]; }
dd if=/dev/urandom of=/tmp/pattern bs=1M count=24 2>/dev/null
want=$(md5sum </tmp/pattern | cut -d' ' -f1)

# outage NAME SECONDS: the target is down for SECONDS during a 24 MiB write.
outage() {
	# New logins are refused from now on; the session goes on until the drop.
	$TT refuse -target $IQN -status 0x0301 -count -1 >/dev/null || fail "refuse"
	t0=$(now_us)
	w0=$(written_sectors $DEV)
	# The write records when it ended: during the outage or after it.
	(
		dd if=/tmp/pattern of=/dev/$DEV bs=64k oflag=direct conv=fsync 2>/tmp/dd.err
		echo $? >/tmp/dd.rc
		ms_since $t0 >/tmp/dd.ms
	) &
	ddpid=$!
	wait_writing $DEV "$w0"
	$TT drop -target $IQN >/dev/null || fail "drop"
	mid=no
	[ -e /tmp/dd.rc ] || mid=yes
	sleep "$2"
	during=$(state)
	$TT refuse -target $IQN -status 0x0000 >/dev/null || fail "refuse clear"
	wait $ddpid
	ddrc=$(cat /tmp/dd.rc)
	dd_ms=$(cat /tmp/dd.ms)
	wait_until 60 logged_in
	back_ms=$(ms_since $t0)
	# Once back, the device takes I/O again.
	got=-
	if has && dd if=/tmp/pattern of=/dev/$DEV bs=1M oflag=direct conv=fsync 2>/dev/null; then
		got=$(dd if=/dev/$DEV bs=1M count=24 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
	fi
	rm -f /tmp/dd.rc /tmp/dd.ms
	emit outage name "$1" down_s "$2" dropped_mid_write "$mid" dd_rc "$ddrc" dd_ms "$dd_ms" dd_err_b64 "$(b64 /tmp/dd.err)" \
		state_during "$during" state_after "$(state)" back_ms "$back_ms" \
		recovery_tmo "$(cat /sys/class/iscsi_session/session$SID/recovery_tmo)" \
		device "$(lun_block "$SID" 0)" sdev_state "$(cat /sys/block/$DEV/device/state 2>/dev/null)" \
		want "$want" got "$got"
}
outage short $((TMO / 2))
outage long $((TMO * 2))
$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
daemon_stop
kill $TTPID
