# A LUN added on the Go test target, announced with an Async Message (AEN 3F/0E)
# through the kernel's RECV_PDU path, or with a unit attention (UA=1). LIO cannot
# send AENs; the test target can. Env: INITIATOR, AUTOSCAN (Yes|No), UA (0|1).
IQN=iqn.2003-01.org.example:aen
cat >/tmp/target.json <<JSON
{"targets": [{"name": "$IQN", "portal_groups": [{"tag": 1, "portals": ["127.0.0.1:3261"]}],
  "luns": [{"number": 0, "size": "40MiB"}], "lun_change_ua": false}]}
JSON
testtarget_start /tmp/target.json
initiator_start
P=127.0.0.1:3261
$ADM -m discovery -t st -p $P >/dev/null || fail "discovery"
[ "${AUTOSCAN:-Yes}" = No ] && $ADM -m node -T $IQN -p $P -o update -n node.session.autoscan_en -v No
$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login"
SID=$(session_sid $IQN)
lun0() { [ -n "$(lun_block "$SID" 0)" ]; }
wait_until 20 lun0 || fail "LUN 0 did not appear"
$TT wait-sessions -target $IQN -n 1 -timeout 10s >/dev/null || fail "target sees no session"
dd_verify "$(lun_block "$SID" 0)" 32
$TT add-lun -target $IQN -lun 3 -size 8MiB || fail "add-lun"
if [ "${UA:-0}" = 1 ]; then
	$TT ua -target $IQN -lun 0 -sense 6/3f/0e >/dev/null || fail "ua"
	dd if="/dev/$(lun_block "$SID" 0)" of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null
else
	$TT aen -target $IQN -event 0 -lun 0 -sense 6/3f/0e >/dev/null || fail "aen"
fi
lun3() { [ -n "$(lun_block "$SID" 3)" ]; }
if wait_until 8 lun3; then appeared=yes; else appeared=no; fi
emit after_event appeared "$appeared" list "$(session_devices "$SID" | tr '\n' ';')"
[ "$appeared" = yes ] && dd_verify "$(lun_block "$SID" 3)" 4
$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
daemon_stop
kill $TTPID
