# Debian guest only (Config.Disk, TestVMSystemdSwitchover): from open-iscsi to goiscsi
# and back on one host, over three boots of one disk, with one node and its data.
# STAGE 1 (on vm.DebianOpenISCSI, where open-iscsi is installed and enabled): node
#   discovered, set to automatic, logged in with stock, data written; then goiscsi's
#   package installed: iscsid stops, the stock units are
#   disabled, goiscsid takes the session over, stock's record and name are used.
# STAGE 2: goiscsi.service logged in at boot with stock's record; iscsiadm at
#   every path open-iscsi's had is goiscsiadm; Debian's os-brick and libvirt's
#   iSCSI pool, unmodified, finding iscsiadm on their own, attach a LUN each,
#   write, read back and detach; goiscsiadm records every target; goiscsi
#   removed: stock's iscsiadm is back at its paths, lists every record goiscsi
#   wrote and logs in with them, the stock units are enabled again and iscsid
#   takes the boot session over.
# STAGE 3: stock open-iscsi logs in at boot as before goiscsi.
# Every boot ends in a clean shutdown whose logout boot-target checks.
# Env: STAGE, BOOT_TARGET. The packages are in /var/cache/goiscsi-test (vm.DebianOfflineDir).
[ -d /run/systemd/system ] || fail "this scenario needs the systemd-booted Debian guest (Config.Disk)"
T=$BOOT_TARGET
P=127.0.0.1:3260
DEB=/var/cache/goiscsi-test/goiscsi.deb
LINK=/dev/disk/by-path/ip-$P-iscsi-$T-lun-0
STATE=/var/lib/goiscsi-test
mkdir -p $STATE

# units prints "unit=enabled-state/active-state ..." for the stock and goiscsi units.
units() {
	for _u in iscsid.socket iscsid.service open-iscsi.service goiscsid.socket goiscsid.service goiscsi.service; do
		printf '%s=%s/%s ' "$_u" "$(systemctl is-enabled "$_u" 2>/dev/null)" "$(systemctl is-active "$_u" 2>/dev/null)"
	done
}
name() { sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi; }
readback() { dd if="$LINK" bs=1M count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1; }

case ${STAGE:-} in
1)
	dpkg-query -W -f '${Status}' open-iscsi 2>/dev/null | grep -q 'install ok installed' ||
		fail "open-iscsi is not installed (boot the vm.DebianOpenISCSI image)"
	log "stock: discovery, login, data"
	iscsiadm -m discovery -t st -p "$P" >/dev/null || fail "stock discovery"
	iscsiadm -m node -T "$T" -p "$P" -o update -n node.startup -v automatic || fail "stock: node.startup = automatic"
	iscsiadm -m node -T "$T" -p "$P" --login >/dev/null || fail "stock login"
	wait_until 30 test -b "$LINK" || fail "no $LINK after the stock login"
	dd if=/dev/urandom of=$STATE/pattern bs=1M count=16 2>/dev/null
	sha256sum <$STATE/pattern | cut -d' ' -f1 >$STATE/want
	dd if=$STATE/pattern of="$LINK" bs=1M oflag=direct conv=fsync 2>/dev/null || fail "write to $LINK"
	name >$STATE/name
	emit stock name "$(name)" sid "$(session_sid "$T")" units "$(units)" want "$(cat $STATE/want)"

	log "installing goiscsi"
	dpkg -i "$DEB" >/tmp/dpkg.log 2>&1 || fail "dpkg -i goiscsi: $(tail -n 5 /tmp/dpkg.log)"
	log "installed goiscsi"
	# Stock's record, read by goiscsiadm.
	run_capture nodes goiscsiadm -m node -T "$T" -p "$P"
	node_rc=$CAP_RC
	run_capture session goiscsiadm -m session
	emit takeover name "$(name)" sid "$(session_sid "$T")" sessions "$(session_count)" units "$(units)" \
		stock_units "$(tr '\n' ' ' </var/lib/goiscsi/stock-units)" got "$(readback)" \
		took_over "$(journalctl -b -u goiscsid.service --no-pager -o cat | grep -c 'took over running session')" \
		node_rc "$node_rc" startup "$(sed -n 's/^node.startup = //p' /tmp/cap/nodes.out)" \
		session_rc "$CAP_RC" session_b64 "$(b64 "$CAP_OUT")" dpkg_b64 "$(b64 /tmp/dpkg.log)"
	;;
2)
	wait_until 30 test -b "$LINK" || fail "no $LINK after boot: $(ls /dev/disk/by-path 2>&1)"
	emit goiscsi_boot name "$(name)" sessions "$(session_count)" units "$(units)" got "$(readback)"

	# iscsiadm where every consumer looks: os-brick /sbin first (and its
	# check that manual scans are supported greps it), libvirt /usr/bin,
	# Proxmox /usr/bin, VDSM /sbin; PATH's too.
	emit paths sbin "$(readlink -f /sbin/iscsiadm)" usr_sbin "$(readlink -f /usr/sbin/iscsiadm)" \
		usr_bin "$(readlink -f /usr/bin/iscsiadm)" path "$(readlink -f "$(command -v iscsiadm)")" \
		manual_scan "$(grep -qF node.session.scan /sbin/iscsiadm && echo yes || echo no)" \
		diversions "$(dpkg-divert --list | grep -c 'iscsiadm.open-iscsi by goiscsi')"

	LIO_DIR=/var/lib/goiscsi-test/lio
	OSB=$T-osbrick
	LV=$T-libvirt
	lio_target $OSB $P 2 16
	lio_target $LV $P 2 16

	log "os-brick: attach LUN 1 of $OSB"
	python3 /lib/goiscsi/osbrick.py connect "$OSB" 1 "$P" >/tmp/osbrick.out 2>/tmp/osbrick.err ||
		fail "os-brick connect_volume: $(tail -n 5 /tmp/osbrick.err)"
	OPATH=$(tail -n 1 /tmp/osbrick.out)
	OSID=$(session_sid "$OSB")
	emit osbrick_attached path "$OPATH" devices "$(session_devices "$OSID" | tr '\n' ';')"
	dd_verify "$(basename "$(readlink -f "$OPATH")")" 8 "$(lio_lun_file "$OSB" 1)"
	python3 /lib/goiscsi/osbrick.py disconnect "$OSB" 1 "$P" "$OPATH" >/tmp/osbrick.out 2>/tmp/osbrick.err ||
		fail "os-brick disconnect_volume: $(tail -n 5 /tmp/osbrick.err)"
	emit osbrick_detached path_left "$([ -e "$OPATH" ] && echo yes || echo no)" session "$(session_sid "$OSB")"
	emit_file osbrick-disconnect.log /tmp/osbrick.err

	log "libvirt: an iSCSI pool of $LV"
	virsh -q pool-define-as lv iscsi --source-host 127.0.0.1 --source-dev "$LV" --target /dev/disk/by-path >/tmp/virsh.log 2>&1 ||
		fail "virsh pool-define-as: $(tail -n 3 /tmp/virsh.log)"
	virsh -q pool-start lv >>/tmp/virsh.log 2>&1 || fail "virsh pool-start: $(tail -n 3 /tmp/virsh.log)"
	virsh -q vol-list lv >/tmp/vols 2>>/tmp/virsh.log || fail "virsh vol-list: $(tail -n 3 /tmp/virsh.log)"
	VPATH=$(awk '/lun-1$/ {print $2}' /tmp/vols)
	emit libvirt_started vols "$(wc -l </tmp/vols)" path "$VPATH" sid "$(session_sid "$LV")"
	[ -n "$VPATH" ] || fail "libvirt's pool has no LUN 1: $(cat /tmp/vols)"
	dd_verify "$(basename "$(readlink -f "$VPATH")")" 8 "$(lio_lun_file "$LV" 1)"
	virsh -q pool-destroy lv >>/tmp/virsh.log 2>&1 || fail "virsh pool-destroy: $(tail -n 3 /tmp/virsh.log)"
	virsh -q pool-undefine lv >>/tmp/virsh.log 2>&1
	emit libvirt_stopped session "$(session_sid "$LV")"

	# Records of every target, written by goiscsiadm.
	goiscsiadm -m discovery -t st -p "$P" >/dev/null || fail "goiscsiadm discovery"

	log "removing goiscsi"
	dpkg -r goiscsi >/tmp/dpkg.log 2>&1 || fail "dpkg -r goiscsi: $(tail -n 5 /tmp/dpkg.log)"
	run_capture stock_nodes iscsiadm -m node
	nodes_rc=$CAP_RC
	cp "$CAP_OUT" /tmp/stock_nodes
	logged=0
	for t in $OSB $LV; do
		iscsiadm -m node -T "$t" -p "$P" --login >/dev/null 2>&1 && logged=$((logged + 1))
	done
	emit stock_back sbin "$(readlink -f /sbin/iscsiadm)" usr_bin "$(readlink -f /usr/bin/iscsiadm)" \
		nodes_rc "$nodes_rc" nodes_b64 "$(b64 /tmp/stock_nodes)" logged_in "$logged" \
		sessions "$(session_count)" diversions "$(dpkg-divert --list | grep -c iscsiadm)"
	for t in $OSB $LV; do
		iscsiadm -m node -T "$t" -p "$P" --logout >/dev/null 2>&1
	done
	run_capture session iscsiadm -m session
	emit switch_back name "$(name)" sessions "$(session_count)" units "$(units)" got "$(readback)" \
		session_rc "$CAP_RC" session_b64 "$(b64 "$CAP_OUT")" goiscsid_program "$(command -v goiscsid || echo none)" \
		startup "$(iscsiadm -m node -T "$T" -p "$P" | sed -n 's/^node.startup = //p')" dpkg_b64 "$(b64 /tmp/dpkg.log)"
	;;
3)
	wait_until 30 test -b "$LINK" || fail "no $LINK after boot: $(ls /dev/disk/by-path 2>&1)"
	run_capture session iscsiadm -m session
	emit stock_boot name "$(name)" sessions "$(session_count)" units "$(units)" got "$(readback)" \
		session_rc "$CAP_RC" session_b64 "$(b64 "$CAP_OUT")"
	;;
*) fail "STAGE is ${STAGE:-unset}, want 1, 2 or 3" ;;
esac
