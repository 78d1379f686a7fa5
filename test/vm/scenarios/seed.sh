# The seed's race, ROUNDS times in one boot: an attach tool attaches LUN 1, later
# detaches it (deletes its SCSI device) and only then asks the array to unexport it;
# meanwhile another volume (LUN 2) is attached on the same target and the array
# announces it with an AEN 3F/0E. Stock open-iscsi rescans the whole target on the
# AEN and LUN 1 comes back as a stale device whose LUN is about to disappear; goiscsid
# with autoscan_en = No scans nothing and LUN 1 stays gone. Counts as data.
# Env: INITIATOR, AUTOSCAN (Yes|No), ROUNDS (default 100).
IQN=iqn.2003-01.org.example:seed
P=127.0.0.1:3261
cat >/tmp/target.json <<JSON
{"targets": [{"name": "$IQN", "portal_groups": [{"tag": 1, "portals": ["$P"]}],
  "luns": [{"number": 0, "size": "8MiB"}], "lun_change_ua": false}]}
JSON
testtarget_start /tmp/target.json
initiator_start
$ADM -m discovery -t st -p $P >/dev/null || fail "discovery"
[ "${AUTOSCAN:-Yes}" = No ] && $ADM -m node -T $IQN -p $P -o update -n node.session.autoscan_en -v No
$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login"
SID=$(session_sid $IQN)
HOST=$(sessions | awk -v s="$SID" '$1 == s {print $2}')
$TT wait-sessions -target $IQN -n 1 -timeout 10s >/dev/null || fail "target sees no session"
has_lun() { [ -n "$(lun_block "$SID" "$1")" ]; }
sdev_exists() { [ -e "/sys/class/scsi_device/$HOST:0:0:$1" ]; }
# delete_lun L deletes LUN L's SCSI device and waits until it is gone.
delete_lun() {
	echo 1 >"/sys/class/scsi_device/$HOST:0:0:$1/device/delete"
	_gone() { ! sdev_exists "$1"; }
	wait_until 10 _gone "$1" || fail "LUN $1 not deleted"
}
# scan_lun L is the attach tool's narrow scan (os-brick writes "C T L" itself).
scan_lun() { echo "0 0 $1" >"/sys/class/scsi_host/host$HOST/scan"; }

stale=0
missing=0
i=0
t0=$(now_us)
while [ "$i" -lt "${ROUNDS:-100}" ]; do
	i=$((i + 1))
	# Attach LUN 1.
	$TT add-lun -target $IQN -lun 1 -size 8MiB >/dev/null || fail "add-lun 1"
	scan_lun 1
	wait_until 10 has_lun 1 || fail "round $i: LUN 1 not attached"
	# Detach LUN 1 on the host; the array still exports it for a moment.
	delete_lun 1
	# Meanwhile LUN 2 is attached and announced.
	$TT add-lun -target $IQN -lun 2 -size 8MiB >/dev/null || fail "add-lun 2"
	scan_lun 2 &
	scanpid=$!
	$TT aen -target $IQN -event 0 -lun 0 -sense 6/3f/0e >/dev/null || fail "aen"
	wait $scanpid
	sleep 0.5
	# The array unexports LUN 1: a device for it now is stale.
	$TT remove-lun -target $IQN -lun 1 >/dev/null || fail "remove-lun 1"
	sleep 0.5
	wait_until 5 has_lun 2 || missing=$((missing + 1))
	if sdev_exists 1; then
		stale=$((stale + 1))
		delete_lun 1
	fi
	sdev_exists 2 && delete_lun 2
	$TT remove-lun -target $IQN -lun 2 >/dev/null || fail "remove-lun 2"
done
emit seed rounds "$i" stale "$stale" lun2_missing "$missing" ms "$(ms_since $t0)" list "$(session_devices "$SID" | tr '\n' ';')"
$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
daemon_stop
kill $TTPID
