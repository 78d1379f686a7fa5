# The README's demo: a LIO target with 3 LUNs; goiscsid and goiscsiadm (or stock
# open-iscsi with INITIATOR=stock) discover it, log in with autoscan on (every LUN
# appears), write and read data, log out, then log in with
# node.session.autoscan_en = No (LUN 0 only), scan LUN 2 alone on request, and
# log out.
INITIATOR=${INITIATOR:-goiscsi}
IQN=iqn.2003-01.org.example:demo
P=127.0.0.1:3260
say() { echo; echo "### $*"; }
show() { echo "\$ iscsiadm $*"; $ADM "$@"; }
devices() {
	echo "\$ lsblk-like list of the iSCSI devices"
	lsiscsi
	emit devices phase "$1" list "$(iscsi_devices | tr '\n' ';')" count "$(iscsi_devices | wc -l)"
}

say "LIO target $IQN on $P with LUNs 0, 1 and 2; initiator: $INITIATOR"
lio_target $IQN $P 3 64
initiator_start

say "discovery"
show -m discovery -t st -p 127.0.0.1 || fail "discovery"

say "login with autoscan on (default): every LUN appears"
show -m node -T $IQN -p $P --login || fail "login"
SID=$(session_sid $IQN)
all_luns() { [ "$(session_devices "$SID" | grep -c ' sd')" -ge 3 ]; }
wait_until 20 all_luns || fail "not all 3 LUNs appeared: $(session_devices "$SID")"
devices autoscan_on
show -m session -P 1

say "write 16 MiB to LUN 0 and read it back"
dd_verify "$(lun_block "$SID" 0)" 16 "$(lio_lun_file $IQN 0)"
echo "data read back identical"

say "logout"
show -m node -T $IQN -p $P --logout || fail "logout"
gone() { [ "$(session_count)" = 0 ]; }
wait_until 10 gone || fail "session still there after logout"

if [ "$INITIATOR" = goiscsi ]; then
	say "login with node.session.autoscan_en = No: LUN 0 only"
	show -m node -T $IQN -p $P -o update -n node.session.autoscan_en -v No || fail "update"
	show -m node -T $IQN -p $P --login || fail "login"
	SID=$(session_sid $IQN)
	lun0() { [ -n "$(lun_block "$SID" 0)" ]; }
	wait_until 20 lun0 || fail "LUN 0 did not appear"
	devices autoscan_off
	[ "$(session_devices "$SID" | wc -l)" = 1 ] || fail "autoscan_en = No: more than LUN 0 appeared: $(session_devices "$SID")"

	say "attach exactly LUN 2 (what a volume attach does)"
	show -m session -r "$SID" --scan-lun 2 || fail "scan-lun"
	devices scan_lun_2
	[ -n "$(lun_block "$SID" 2)" ] && [ -z "$(lun_block "$SID" 1)" ] || fail "--scan-lun 2: $(session_devices "$SID")"

	say "logout"
	show -m node -T $IQN -p $P --logout || fail "logout"
	wait_until 10 gone || fail "session still there after logout"

	say "the same from Go: initiator/example/attachlun attaches LUN 1 alone, detaches it"
	need_prog "$ATTACHLUN"
	echo "\$ attachlun -portal 127.0.0.1 -target $IQN -lun 1 attach"
	"$ATTACHLUN" -portal 127.0.0.1 -target "$IQN" -lun 1 attach >/tmp/attach.json || fail "attachlun attach"
	cat /tmp/attach.json
	DISK=$(sed -n 's/.*"disk":"\([^"]*\)".*/\1/p' /tmp/attach.json)
	SID=$(session_sid $IQN)
	devices example_attach
	[ -n "$DISK" ] && [ "$(lun_block "$SID" 1)" = "$DISK" ] && [ "$(session_devices "$SID" | wc -l)" = 1 ] ||
		fail "attachlun: disk $DISK, devices $(session_devices "$SID")"
	dd_verify "$DISK" 8 "$(lio_lun_file $IQN 1)"
	echo "\$ attachlun -target $IQN -lun 1 detach"
	"$ATTACHLUN" -target "$IQN" -lun 1 detach || fail "attachlun detach"
	wait_until 10 gone || fail "session still there after attachlun detach"
	emit example_detached sessions "$(session_count)" disk_left "$([ -e /sys/block/$DISK ] && echo yes || echo no)"
fi
daemon_stop
say "demo finished"
