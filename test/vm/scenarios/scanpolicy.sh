# Which LUNs a login brings, per scan setting: a target with 3 LUNs, logged in with
# node.session.scan = auto, = manual, and with node.session.autoscan_en = No.
# Env: INITIATOR (stock or goiscsi).
IQN=iqn.2003-01.org.example:scan
P=127.0.0.1:3260
lio_target $IQN $P 3 8
initiator_start
$ADM -m discovery -t st -p 127.0.0.1 >/dev/null || fail "discovery"
all_disks() { ! session_devices "$1" | grep -q ' -$'; }
try() { # NAME KEY VALUE
	$ADM -m node -T $IQN -p $P -o update -n node.session.scan -v auto >/dev/null
	$ADM -m node -T $IQN -p $P -o update -n node.session.autoscan_en -v Yes >/dev/null 2>&1
	$ADM -m node -T $IQN -p $P -o update -n "$2" -v "$3" >/dev/null 2>&1
	t0=$(now_us)
	run_capture "$1" $ADM -m node -T $IQN -p $P --login
	ms=$(ms_since $t0)
	# Both initiators answer a login once its scan is written (stock from
	# the child that wrote it); a scanned disk's block device comes a moment
	# later.
	sid=$(session_sid $IQN)
	wait_until 20 all_disks "$sid" || fail "$1: a device without its disk: $(session_devices "$sid")"
	emit policy name "$1" rc "$CAP_RC" login_ms "$ms" devices "$(session_devices "$sid" | tr '\n' ';')" \
		count "$(session_devices "$sid" | wc -l)"
	$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
	gone() { [ "$(session_count)" = 0 ]; }
	wait_until 10 gone || fail "session left after logout"
}
try auto node.session.scan auto
try manual node.session.scan manual
try autoscan_off node.session.autoscan_en No
daemon_stop
