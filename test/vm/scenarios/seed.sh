# The seed's bug: a host detaches LUN 1 (deletes its SCSI device) while the array
# still exports it for a moment, and the array announces a LUN change (AEN 3F/0E,
# here for LUN 2 being added). Stock open-iscsi rescans the whole target and LUN 1
# comes back as a stale device; goiscsid with autoscan_en = No leaves it gone.
# Env: INITIATOR, AUTOSCAN (Yes|No).
IQN=iqn.2003-01.org.example:seed
cat >/tmp/target.json <<JSON
{"targets": [{"name": "$IQN", "portal_groups": [{"tag": 1, "portals": ["127.0.0.1:3261"]}],
  "luns": [{"number": 0, "size": "8MiB"}, {"number": 1, "size": "8MiB"}], "lun_change_ua": false}]}
JSON
testtarget_start /tmp/target.json
initiator_start
P=127.0.0.1:3261
$ADM -m discovery -t st -p $P >/dev/null || fail "discovery"
[ "${AUTOSCAN:-Yes}" = No ] && $ADM -m node -T $IQN -p $P -o update -n node.session.autoscan_en -v No
$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login"
SID=$(session_sid $IQN)
HOST=$(sessions | awk -v s="$SID" '$1 == s {print $2}')
# The attach of LUN 1: an attach tool scans exactly it under autoscan_en = No.
[ "${AUTOSCAN:-Yes}" = No ] && $ADM -m session -r "$SID" --scan-lun 1 >/dev/null
lun1() { [ -n "$(lun_block "$SID" 1)" ]; }
wait_until 20 lun1 || fail "LUN 1 not attached: $(session_devices "$SID")"
emit attached list "$(session_devices "$SID" | tr '\n' ';')"
# The detach: the host deletes LUN 1's device; the array has not unexported it yet.
echo 1 >"/sys/class/scsi_device/$HOST:0:0:1/device/delete"
gone1() { [ -z "$(lun_block "$SID" 1)" ] && [ ! -e "/sys/class/scsi_device/$HOST:0:0:1" ]; }
wait_until 10 gone1 || fail "LUN 1 not deleted"
$TT wait-sessions -target $IQN -n 1 -timeout 10s >/dev/null || fail "target sees no session"
$TT add-lun -target $IQN -lun 2 -size 8MiB >/dev/null || fail "add-lun"
$TT aen -target $IQN -event 0 -lun 0 -sense 6/3f/0e >/dev/null || fail "aen"
if wait_until 8 lun1; then back=yes; else back=no; fi
emit after_aen lun1_back "$back" list "$(session_devices "$SID" | tr '\n' ';')"
$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
daemon_stop
kill $TTPID
