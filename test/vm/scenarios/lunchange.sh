# The seed's problem: LUNs added to a target while a session is live. LIO reports
# REPORTED LUNS DATA HAS CHANGED as a Unit Attention on the next command; the
# kernel only emits a uevent. Stock 2.1.8 ignores it (no new device); goiscsid
# scans for it under autoscan and does nothing under autoscan_en = No.
# Env: INITIATOR (stock or goiscsi), AUTOSCAN (Yes or No).
IQN=iqn.2003-01.org.example:lunchange
P=127.0.0.1:3260
lio_target $IQN $P 1 16
initiator_start
$ADM -m discovery -t st -p 127.0.0.1 >/dev/null || fail "discovery"
if [ "${AUTOSCAN:-Yes}" = No ]; then
	$ADM -m node -T $IQN -p $P -o update -n node.session.autoscan_en -v No || fail "update"
fi
$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login"
SID=$(session_sid $IQN)
lun0() { [ -n "$(lun_block "$SID" 0)" ]; }
wait_until 20 lun0 || fail "LUN 0 did not appear"
emit before list "$(session_devices "$SID" | tr '\n' ';')"

lio_add_lun $IQN 1 16
# The next command to LUN 0 carries the unit attention.
dd if="/dev/$(lun_block "$SID" 0)" of=/dev/null bs=4k count=1 iflag=direct 2>/dev/null
lun1() { [ -n "$(lun_block "$SID" 1)" ]; }
if wait_until 8 lun1; then appeared=yes; else appeared=no; fi
emit after_add appeared "$appeared" list "$(session_devices "$SID" | tr '\n' ';')"
$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
daemon_stop
