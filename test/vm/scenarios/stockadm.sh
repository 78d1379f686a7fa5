# Stock iscsiadm 2.1.8 with goiscsid and no iscsid: what consumers that run
# open-iscsi's iscsiadm (os-brick, libvirt, Proxmox), or CSI containers with
# their own, get on a host running goiscsi. Discovery; a login of a record
# with node.session.scan = manual (no disk at all); an auto login (every LUN,
# data written and read back identical); -P 3; -R; logout; -U all; then the
# same from a second root, a chroot holding only stock's binaries and their
# own /etc/iscsi, reaching goiscsid over the abstract socket as a container in
# the host's network namespace does; last, the container's -k 0 stops goiscsid.
# Env: INITIATOR=stockadm (goiscsid, stock iscsiadm).
IQN=iqn.2003-01.org.example:stockadm
MAN=iqn.2003-01.org.example:stockadm-manual
lio_target $IQN 127.0.0.1:3260 3 16
lio_target $MAN 127.0.0.1:3260 2 16
initiator_start
[ "$ADM" = "$STOCK_ISCSIADM" ] || fail "ADM is $ADM, want stock's iscsiadm"

step() {
	_st_name=$1
	shift
	run_capture "$_st_name" "$@"
	emit cmd name "$_st_name" rc "$CAP_RC" stdout_b64 "$(b64 $CAP_OUT)" stderr_b64 "$(b64 $CAP_ERR)"
}
must() {
	step "$@"
	[ "$CAP_RC" = 0 ] || fail "$1: exit $CAP_RC: $(cat $CAP_ERR)"
}

must discovery $ADM -m discovery -t st -p 127.0.0.1
must manual_update $ADM -m node -T $MAN -p 127.0.0.1:3260 -o update -n node.session.scan -v manual
must manual_login $ADM -m node -T $MAN -p 127.0.0.1:3260 --login
MSID=$(session_sid $MAN)
[ -n "$MSID" ] || fail "no session after the manual login"
# The login's answer comes after the scan a policy asks for, so the devices
# are there (or not) when it returns.
emit devices phase manual sid "$MSID" count "$(session_devices $MSID | wc -l)" list "$(session_devices $MSID | tr '\n' ';')"

must auto_login $ADM -m node -T $IQN -p 127.0.0.1:3260 --login
SID=$(session_sid $IQN)
[ -n "$SID" ] || fail "no session after the auto login"
all_three() { [ "$(session_devices $SID | grep -vc ' -$')" = 3 ]; }
wait_until 30 all_three || fail "not every LUN got its disk within 30 s: $(session_devices $SID)"
emit devices phase auto sid "$SID" count "$(session_devices $SID | wc -l)" list "$(session_devices $SID | tr '\n' ';')"
dd_verify "$(lun_block $SID 2)" 8 "$(lio_lun_file $IQN 2)"

must p3 $ADM -m session -P 3
step stats $ADM -m session -r "$SID" -s
# -R: stock iscsiadm rescans through sysfs itself.
lio_add_lun $IQN 3 16
must rescan $ADM -m session -r "$SID" -R
four() { [ "$(session_devices $SID | wc -l)" = 4 ]; }
wait_until 30 four || fail "-R did not add LUN 3: $(session_devices $SID)"
emit devices phase rescan sid "$SID" count "$(session_devices $SID | wc -l)"
must logout $ADM -m node -T $MAN -p 127.0.0.1:3260 --logout
must auto_startup $ADM -m node -T $IQN -p 127.0.0.1:3260 -o update -n node.startup -v automatic
must logout_all $ADM -m node -U all
emit after_logout sessions "$(session_count)"

# The second root: stock's iscsiadm with its libraries, its own /etc/iscsi.
C=/tmp/container
mkdir -p $C/sbin $C/etc/iscsi $C/run/lock/iscsi $C/var/lib/iscsi $C/proc $C/sys $C/dev $C/tmp
cp "$STOCK_ISCSIADM" $C/sbin/iscsiadm
# Its libraries, as the dynamic loader resolves them, and the loader itself.
for lib in $(/lib64/ld-linux-x86-64.so.2 --list "$STOCK_ISCSIADM" | awk '$2 == "=>" {print $3} $1 ~ /^\// {print $1}'); do
	mkdir -p "$C$(dirname "$lib")" && cp -L "$lib" "$C$lib"
done
echo "InitiatorName=iqn.2026-12.dev.goiscsi:container" >$C/etc/iscsi/initiatorname.iscsi
cp /etc/iscsi/iscsid.conf $C/etc/iscsi/ 2>/dev/null || true
mount -t proc proc $C/proc
mount -t sysfs sysfs $C/sys
mount -o bind /dev $C/dev
CADM="chroot $C /sbin/iscsiadm"
must c_discovery $CADM -m discovery -t st -p 127.0.0.1
# The container's own record says scan = manual: goiscsid honours the record
# stock sends, not one of its own database.
must c_manual_update $CADM -m node -T $MAN -p 127.0.0.1:3260 -o update -n node.session.scan -v manual
must c_manual_login $CADM -m node -T $MAN -p 127.0.0.1:3260 --login
MSID=$(session_sid $MAN)
[ -n "$MSID" ] || fail "no session after the container's manual login"
emit devices phase c_manual sid "$MSID" count "$(session_devices $MSID | wc -l)" list "$(session_devices $MSID | tr '\n' ';')"
must c_login $CADM -m node -T $IQN -p 127.0.0.1:3260 --login
SID=$(session_sid $IQN)
[ -n "$SID" ] || fail "no session after the container's login"
wait_until 30 four || fail "the container's login did not bring every LUN: $(session_devices $SID)"
emit devices phase container sid "$SID" count "$(session_devices $SID | wc -l)" \
	initiator "$(cat /sys/class/iscsi_session/session$SID/initiatorname)"
dd_verify "$(lun_block $SID 1)" 8 "$(lio_lun_file $IQN 1)"
must c_session $CADM -m session
must c_p3 $CADM -m session -P 3
lio_add_lun $IQN 4 16
must c_rescan $CADM -m session -r "$SID" -R
five() { [ "$(session_devices $SID | wc -l)" = 5 ]; }
wait_until 30 five || fail "the container's -R did not add LUN 4: $(session_devices $SID)"
emit devices phase c_rescan sid "$SID" count "$(session_devices $SID | wc -l)"
must c_logout_all $CADM -m node -U all
emit c_after_logout sessions "$(session_count)"

# goiscsid stops on the container's -k 0 as on the host's: one socket.
step c_stop $CADM -k 0
stopped() { ! kill -0 "$GOISCSID_PID" 2>/dev/null || grep -q '^State:.*Z' "/proc/$GOISCSID_PID/status"; }
wait_until 10 stopped || fail "goiscsid did not stop on stock's -k 0 from the container"
emit stopped yes
umount $C/proc $C/sys $C/dev
daemon_stop
