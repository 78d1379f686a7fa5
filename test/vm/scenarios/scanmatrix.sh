# The scan policy, step by step, as data: which LUNs have a block device after each
# thing that can trigger a scan. The Go test target exports LUNs 0, 1, 2; an attach
# tool attaches LUNs 0 and 1 narrowly (as os-brick does: "0 0 L" to the host's scan
# file) where the login did not; the host then detaches LUN 1 while the target still
# exports it. After that: logout + login, a dropped connection (recovery), LUN 3
# added with an AEN 3F/0E, LUN 4 added with a unit attention, the daemon killed and
# started again, and (goiscsi) `--scan-lun 2`.
# Env: INITIATOR (stock|goiscsi), POLICY (auto|off|manual; goiscsi only).
IQN=iqn.2003-01.org.example:matrix
P=127.0.0.1:3261
cat >/tmp/target.json <<JSON
{"targets": [{"name": "$IQN", "portal_groups": [{"tag": 1, "portals": ["$P"]}],
  "luns": [{"number": 0, "size": "8MiB"}, {"number": 1, "size": "8MiB"}, {"number": 2, "size": "8MiB"}],
  "lun_change_ua": false}]}
JSON
testtarget_start /tmp/target.json
initiator_start
$ADM -m discovery -t st -p $P >/dev/null || fail "discovery"
case "${POLICY:-auto}" in
off) $ADM -m node -T $IQN -p $P -o update -n node.session.autoscan_en -v No || fail "update autoscan_en" ;;
manual) $ADM -m node -T $IQN -p $P -o update -n node.session.scan -v manual || fail "update scan" ;;
esac

# luns prints the session's LUNs that have a block device, as "0,1,2".
luns() { session_devices "$SID" | awk '$2 != "-" {n = split($1, a, ":"); print a[n]}' | sort -n | tr '\n' , | sed 's/,$//'; }
# step NAME records the LUNs after a step.
step() { emit step name "$1" luns "$(luns)"; }
# scans TRIGGER prints how many scan decisions goiscsid has logged for TRIGGER
# (it logs each, also "none").
scans() { grep -c "msg=scan .*trigger=$1 " /tmp/goiscsid.log 2>/dev/null; }
# settle TRIGGER BEFORE waits until the initiator is done with TRIGGER, then for
# the disks of what it scanned. goiscsid logs a decision for every trigger
# (BEFORE is what scans printed before it). Stock answers a login after its
# scan (from the child that wrote the scan file), scans the whole target on an
# AEN (LUN 3, the new one, is the last it adds), and never scans for a relogin,
# a unit attention or its own restart.
settle() {
	case ${INITIATOR:-stock}:$1 in
	goiscsi:*)
		_se_more() { [ "$(scans "$1")" -gt "$2" ]; }
		wait_until 30 _se_more "$1" "$2" || fail "no $1 scan decision logged"
		;;
	stock:async-event) wait_until 30 has_lun 3 || fail "stock did not scan after the AEN" ;;
	esac
	_se_disks() { ! session_devices "$SID" | grep -q ' -$'; }
	wait_until 20 _se_disks || fail "a device without its disk after $1: $(session_devices "$SID")"
}
host() { sessions | awk -v s="$SID" '$1 == s {print $2}'; }
has_lun() { [ -n "$(lun_block "$SID" "$1")" ]; }
# attach L: the attach tool's narrow scan of one LUN, when it has no device yet.
attach() {
	has_lun "$1" && return 0
	echo "0 0 $1" >"/sys/class/scsi_host/host$(host)/scan"
	wait_until 10 has_lun "$1" || fail "LUN $1 not attached by a narrow scan"
}
# detach L: the host deletes LUN L's device; the target goes on exporting it.
detach() {
	echo 1 >"/sys/class/scsi_device/$(host):0:0:$1/device/delete"
	_gone() { ! has_lun "$1" && [ ! -e "/sys/class/scsi_device/$(host):0:0:$1" ]; }
	wait_until 10 _gone "$1" || fail "LUN $1 not deleted"
}
login() {
	$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login"
	SID=$(session_sid $IQN)
	[ -n "$SID" ] || fail "no session after login"
	$TT wait-sessions -target $IQN -n 1 -timeout 10s >/dev/null || fail "target sees no session"
}
logged_in() { [ "$(cat /sys/class/iscsi_session/session$SID/state)" = LOGGED_IN ]; }

# 1. Login.
_n=$(scans login)
login
settle login "$_n"
step login
attach 0
attach 1
step attach
# 2. LUN 1 detached on the host, still exported; logout and login again.
detach 1
step detach
$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
_n=$(scans login)
login
settle login "$_n"
step relogin
# The attach tool brings its LUN 0 back (manual scans nothing); LUN 1 is deleted
# again wherever the login brought it back, so recovery is judged on its own.
attach 0
has_lun 1 && detach 1
# ... and the connection drops: the kernel keeps the session, the daemon logs in again.
_n=$(scans relogin)
_errs=$(dmesg | grep -c 'detected conn error')
$TT drop -target $IQN >/dev/null || fail "drop"
conn_error() { [ "$(dmesg | grep -c 'detected conn error')" -gt "$_errs" ]; }
wait_until 30 conn_error || fail "the kernel saw no connection error"
wait_until 30 logged_in || fail "session did not recover"
$TT wait-sessions -target $IQN -n 1 -timeout 10s >/dev/null || fail "target sees no session after recovery"
emit recovered conn_errors "$(dmesg | grep -c 'detected conn error')"
settle relogin "$_n"
step recovery
# 3. LUN 3 added; the target announces it with an AEN 3F/0E.
_n=$(scans async-event)
$TT add-lun -target $IQN -lun 3 -size 8MiB >/dev/null || fail "add-lun 3"
$TT aen -target $IQN -event 0 -lun 0 -sense 6/3f/0e >/dev/null || fail "aen"
settle async-event "$_n"
step aen
# 4. LUN 4 added; a unit attention 3F/0E on the next command to LUN 0.
_n=$(scans unit-attention)
$TT add-lun -target $IQN -lun 4 -size 8MiB >/dev/null || fail "add-lun 4"
$TT ua -target $IQN -lun 0 -sense 6/3f/0e >/dev/null || fail "ua"
dd if="/dev/$(lun_block "$SID" 0)" of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null
settle unit-attention "$_n"
step ua
# 5. The daemon is killed and started again; I/O on LUN 0 goes on.
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
initiator_start # a new log
settle daemon-start 0
step restart
dd_verify "$(lun_block "$SID" 0)" 4
# 6. The narrow scan of one LUN (goiscsi only: stock has no such command).
if [ "${INITIATOR:-stock}" = goiscsi ]; then
	run_capture scanlun $ADM -m session -r "$SID" --scan-lun 2
	emit scanlun rc "$CAP_RC" out_b64 "$(b64 $CAP_OUT)" err_b64 "$(b64 $CAP_ERR)"
	step scanlun
	# A LUN above 255, as the target numbers it (peripheral addressing here).
	$TT add-lun -target $IQN -lun 300 -size 8MiB >/dev/null || fail "add-lun 300"
	run_capture scanlun300 $ADM -m session -r "$SID" --scan-lun 300
	emit scanlun300 rc "$CAP_RC" out_b64 "$(b64 $CAP_OUT)" err_b64 "$(b64 $CAP_ERR)"
	step scanlun300
fi
$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
daemon_stop
kill $TTPID
