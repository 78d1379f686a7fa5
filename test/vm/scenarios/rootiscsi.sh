# Issue 21, a Debian host whose root file system is an iSCSI LUN
# (TestVMRootOnISCSI; the root made by test/vm's InstallISCSIRoot): goiscsi's
# initramfs-tools script logged in with goiscsistart before the root was
# mounted, from /etc/iscsi/iscsi.initramfs. Here, with systemd up: goiscsid has
# taken that session over (same SID, no login of its own); a connection drop
# during writes to the root file system recovers with no I/O error and the
# data reads back identical; logouts that name no session (-U all, even with
# a record of the boot target whose startup is automatic; -m session -u)
# leave the root's session logged in. The
# shutdown after this script (debian-run) must keep it to the end: the host
# test checks the target saw no logout and the file system is clean.
# Env: ROOT_TARGET, ROOT_PORTAL (as the guest reaches it: 10.0.2.2:PORT).
ADDR=${ROOT_PORTAL%:*}
PORT=${ROOT_PORTAL##*:}

src=$(findmnt -n -o SOURCE /) || fail "no root mount"
dev=$(basename "$(readlink -f "$src")")
sid=$(readlink -f "/sys/class/block/$dev/device" | sed -n 's|.*/session\([0-9]*\)/.*|\1|p')
emit root source "$src" dev "$dev" sid "$sid" target "$(cat "/sys/class/iscsi_session/session$sid/targetname" 2>/dev/null)" \
	address "$(cat "/sys/class/iscsi_connection/connection$sid:0/persistent_address" 2>/dev/null)" \
	sessions "$(ls /sys/class/iscsi_session | tr '\n' ' ')"
[ -n "$sid" ] || fail "the root ($src) is not on an iSCSI session"

# goiscsi.service started goiscsid through its socket at boot; it took the
# session over.
cmd_record session iscsiadm -m session
cmd_record goiscsid_journal journalctl -b -u goiscsid --no-pager -o cat
systemctl is-active --quiet goiscsid || fail "goiscsid is not running"
grep -q "took over running session.*sid=$sid" "$CAP_OUT" || fail "goiscsid did not take over session $sid"

# A connection drop in the middle of writes to the root file system. Pattern A
# is written and synced first; then a writer overwrites the file with pattern
# B, 1 MiB at a time with O_DIRECT, pass after pass, and stops at the end of
# the pass in which the session came back from the drop: so the writes surely
# span the drop and the recovery whatever the machine's speed, and a write
# lost in them (in the last pass) would leave A behind.
MIB=32
modprobe tcp_diag || fail "modprobe tcp_diag"
for p in a b; do
	dd if=/dev/urandom of=/dev/shm/pattern.$p bs=1M count=$MIB 2>/dev/null || fail "pattern $p"
done
want=$(sha256sum </dev/shm/pattern.b | cut -d' ' -f1)
dd if=/dev/shm/pattern.a of=/var/tmp/rootfile bs=1M oflag=direct conv=fsync 2>/dev/null || fail "write pattern A"
rm -f /tmp/recovered
(
	pass=0 seen=0
	while [ $seen = 0 ]; do
		pass=$((pass + 1))
		i=0
		while [ $i -lt $MIB ]; do
			dd if=/dev/shm/pattern.b of=/var/tmp/rootfile bs=1M count=1 skip=$i seek=$i \
				oflag=direct conv=notrunc status=none 2>>/tmp/writer.err || exit 1
			[ -e /tmp/recovered ] && seen=1
			i=$((i + 1))
		done
	done
	echo $pass >/tmp/writer.passes
) &
writer=$!
before=$(written_sectors "$dev")
wait_writing "$dev" "$before"
errors0=$(dmesg | grep -c 'detected conn error')
killed=$(ss -K dst "$ADDR" dport = :"$PORT" | grep -c ESTAB)
[ "$killed" -ge 1 ] || fail "ss -K killed no connection to $ROOT_PORTAL"
conn_error() { [ "$(dmesg | grep -c 'detected conn error')" -gt "$errors0" ]; }
wait_until 30 conn_error || fail "the kernel saw no connection error after the drop"
logged_in() { [ "$(cat /sys/class/iscsi_session/session$sid/state)" = LOGGED_IN ]; }
wait_until 60 logged_in || fail "session $sid not logged in again within 60 s of the drop"
touch /tmp/recovered
if wait $writer; then writer_rc=0; else writer_rc=$?; fi
sync
echo 3 >/proc/sys/vm/drop_caches
got=$(sha256sum </var/tmp/rootfile | cut -d' ' -f1)
io_errors=$(dmesg | grep -c -E 'I/O error|EXT4-fs error|Remounting filesystem read-only')
emit drop killed "$killed" writer_rc "$writer_rc" writer_err "$(cat /tmp/writer.err 2>/dev/null)" \
	passes "$(cat /tmp/writer.passes 2>/dev/null)" want "$want" got "$got" io_errors "$io_errors" \
	state "$(cat /sys/class/iscsi_session/session$sid/state)" \
	sessions "$(ls /sys/class/iscsi_session | tr '\n' ' ')"
[ "$writer_rc" = 0 ] || fail "a write to the root file system failed across the drop: $(cat /tmp/writer.err)"
[ "$got" = "$want" ] || fail "the root file system's file reads back $got, wrote $want"
[ "$io_errors" = 0 ] || fail "I/O errors in the kernel log: $(dmesg | grep -E 'I/O error|EXT4-fs error' | head -n 3)"
cmd_record recovery_journal journalctl -b -u goiscsid --no-pager -o cat

# A record of the boot target whose startup is automatic, as a discovery and
# an administrator's edit would leave it: -U all, -U automatic, and logouts of
# every node's or every session (-m node -u, -m session -u) must still leave
# the root's session alone.
cmd_record node_new iscsiadm -m node -o new -T "$ROOT_TARGET" -p "$ROOT_PORTAL"
cmd_record node_auto iscsiadm -m node -T "$ROOT_TARGET" -p "$ROOT_PORTAL" -o update -n node.startup -v automatic
cmd_record logout_all iscsiadm -m node --logoutall=all
cmd_record logout_automatic iscsiadm -m node -U automatic
cmd_record logout_nodes iscsiadm -m node -u
cmd_record logout_sessions iscsiadm -m session -u
logged_in || fail "session $sid is $(cat /sys/class/iscsi_session/session$sid/state) after -U all"
cmd_record session_after iscsiadm -m session
touch /var/tmp/still-writable && sync || fail "the root file system is not writable after -U all"
