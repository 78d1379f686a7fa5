# Debian guest only (Config.Disk, TestVMSystemdInstall): goiscsi's Debian package on a
# systemd host without open-iscsi, over two boots of one disk.
# STAGE 1: dpkg -i makes /etc/iscsi (iscsid.conf, a new initiator name) and enables the
#   units; `systemctl start goiscsid` returns once goiscsid is ready (Type=notify) and
#   the hardened unit loaded iscsi_tcp; discovery; the node is set to automatic.
# STAGE 2: goiscsi.service logged in at boot and udev made the by-path link;
#   `systemctl restart goiscsid` during a write loses nothing and the session is
#   listed again; a stopped goiscsid is started by its socket on the next goiscsiadm;
#   installing the package again (an upgrade) restarts goiscsid and keeps the session.
# Both boots end in a clean shutdown: boot-target reports the target's sessions after
# goiscsi.service stopped (0: it logged out).
# Env: STAGE, BOOT_TARGET (the target boot-target makes). The package is in
# /var/cache/goiscsi-test (vm.DebianOfflineDir).
[ -d /run/systemd/system ] || fail "this scenario needs the systemd-booted Debian guest (Config.Disk)"
T=$BOOT_TARGET
P=127.0.0.1:3260
DEB=/var/cache/goiscsi-test/goiscsi.deb
LINK=/dev/disk/by-path/ip-$P-iscsi-$T-lun-0

case ${STAGE:-} in
1)
	[ ! -e /etc/iscsi ] || fail "/etc/iscsi exists before goiscsi is installed"
	! grep -q '^iscsi_tcp ' /proc/modules || fail "iscsi_tcp is loaded before goiscsid ran"
	log "installing goiscsi"
	dpkg -i "$DEB" >/tmp/dpkg.log 2>&1 || fail "dpkg -i goiscsi: $(tail -n 5 /tmp/dpkg.log)"
	emit installed name "$(sed -n 's/^InitiatorName=//p' /etc/iscsi/initiatorname.iscsi)" \
		name_mode "$(stat -c %a /etc/iscsi/initiatorname.iscsi)" conf_mode "$(stat -c %a /etc/iscsi/iscsid.conf)" \
		socket "$(systemctl is-active goiscsid.socket)" socket_enabled "$(systemctl is-enabled goiscsid.socket)" \
		boot_unit_enabled "$(systemctl is-enabled goiscsi.service)" daemon "$(systemctl is-active goiscsid.service)" \
		dpkg_b64 "$(b64 /tmp/dpkg.log)"
	log "starting goiscsid"
	t0=$(now_us)
	systemctl start goiscsid.service || fail "systemctl start goiscsid: $(journalctl -b -u goiscsid --no-pager | tail -n 5)"
	emit started ms "$(ms_since "$t0")" active "$(systemctl is-active goiscsid.service)" \
		status "$(systemctl show -p StatusText --value goiscsid.service)" \
		iscsi_tcp "$(grep -c '^iscsi_tcp ' /proc/modules)"
	run_capture disc goiscsiadm -m discovery -t st -p "$P"
	[ "$CAP_RC" = 0 ] || fail "discovery exit $CAP_RC: $(cat "$CAP_ERR")"
	run_capture auto goiscsiadm -m node -T "$T" -p "$P" -o update -n node.startup -v automatic
	[ "$CAP_RC" = 0 ] || fail "node.startup = automatic: exit $CAP_RC: $(cat "$CAP_ERR")"
	emit node startup "$(goiscsiadm -m node -T "$T" -p "$P" | sed -n 's/^node.startup = //p')" sessions "$(session_count)"
	;;
2)
	wait_until 30 test -b "$LINK" || fail "no $LINK after boot: $(ls /dev/disk/by-path 2>&1)"
	journalctl -b -u goiscsi.service --no-pager -o cat >/tmp/boot-unit.log
	emit boot_login sessions "$(session_count)" boot_unit "$(systemctl is-active goiscsi.service)" \
		daemon "$(systemctl is-active goiscsid.service)" dev "$(readlink -f "$LINK")" log_b64 "$(b64 /tmp/boot-unit.log)"

	log "restart during a write"
	# A restart during a write: the kernel keeps the session, the new goiscsid
	# takes it over, and every byte arrives.
	dd if=/dev/urandom of=/var/tmp/pattern bs=1M count=16 2>/dev/null
	want=$(sha256sum </var/tmp/pattern | cut -d' ' -f1)
	pid0=$(systemctl show -p MainPID --value goiscsid.service)
	# The writer writes the pattern again and again until the restart is
	# over, so a write is under way while goiscsid restarts however fast the
	# machine is; rounds counts the writes that began.
	rm -f /tmp/restart.done /tmp/dd.rounds
	(
		while [ ! -e /tmp/restart.done ]; do
			echo >>/tmp/dd.rounds
			dd if=/var/tmp/pattern of="$LINK" bs=64k oflag=direct conv=fsync 2>>/tmp/dd.err || exit 1
		done
	) &
	ddpid=$!
	wait_until 30 test -s /tmp/dd.rounds || fail "the writer did not start"
	running=no
	kill -0 "$ddpid" 2>/dev/null && running=yes
	systemctl restart goiscsid.service || fail "systemctl restart goiscsid"
	before=$(wc -l </tmp/dd.rounds)
	# One more write that begins after the restart, through the new daemon's
	# session.
	wait_until 60 sh -c "[ \$(wc -l </tmp/dd.rounds) -gt $before ] || ! kill -0 $ddpid 2>/dev/null"
	touch /tmp/restart.done
	wait "$ddpid"
	ddrc=$?
	rounds=$(wc -l </tmp/dd.rounds)
	pid1=$(systemctl show -p MainPID --value goiscsid.service)
	got=$(dd if="$LINK" bs=1M count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
	run_capture session goiscsiadm -m session
	emit restart dd_running "$running" dd_rc "$ddrc" rounds_at_restart "$before" rounds "$rounds" dd_err "$(cat /tmp/dd.err)" want "$want" got "$got" \
		pid_before "$pid0" pid_after "$pid1" active "$(systemctl is-active goiscsid.service)" \
		took_over "$(journalctl -b -u goiscsid.service --no-pager -o cat | grep -c 'took over running session')" \
		session_rc "$CAP_RC" session_b64 "$(b64 "$CAP_OUT")"

	log "socket activation"
	# Socket activation: goiscsid stopped, its socket listening; the next
	# goiscsiadm call that asks the daemon starts it.
	systemctl stop goiscsid.service 2>/dev/null || fail "systemctl stop goiscsid"
	before=$(systemctl is-active goiscsid.service)
	run_capture activated goiscsiadm -m session
	emit activation before "$before" after "$(systemctl is-active goiscsid.service)" \
		socket "$(systemctl is-active goiscsid.socket)" rc "$CAP_RC" out_b64 "$(b64 "$CAP_OUT")" \
		sessions "$(session_count)"

	# An upgrade (the same package again): postinst restarts goiscsid, which
	# takes the session over again; goiscsi.service stays as it is (no logout).
	log "upgrade"
	sid0=$(session_sid "$T")
	pid0=$(systemctl show -p MainPID --value goiscsid.service)
	dpkg -i "$DEB" >/tmp/dpkg.log 2>&1 || fail "dpkg -i goiscsi again: $(tail -n 5 /tmp/dpkg.log)"
	emit upgrade sid_before "$sid0" sid_after "$(session_sid "$T")" pid_before "$pid0" \
		pid_after "$(systemctl show -p MainPID --value goiscsid.service)" daemon "$(systemctl is-active goiscsid.service)" \
		boot_unit "$(systemctl is-active goiscsi.service)" dev "$(readlink -f "$LINK")" \
		got "$(dd if="$LINK" bs=1M count=16 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)" dpkg_b64 "$(b64 /tmp/dpkg.log)"
	;;
*) fail "STAGE is ${STAGE:-unset}, want 1 or 2" ;;
esac
