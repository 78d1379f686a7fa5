# Safe attach and detach of one LUN under dm-multipath (issue 12). Two sessions to one
# LIO target over two portals (127.0.0.1:3260, 127.0.0.2:3260) give one map per LUN,
# made by Debian's multipathd. goiscsiadm --scan-lun attaches LUN 1 on both paths and
# names the map, --remove-lun takes map and paths away; with user_friendly_names yes
# and no. A process holding the map open, released or not; a detach of one LUN
# concurrent with the attach of another, ITER times; and os-brick's
# `multipath -f <WWID>` beside it. Env: ITER (default 50) and MPITER (of them with
# maps, default 2).
IQN=iqn.2003-01.org.example:mp
ITER=${ITER:-50}
MPITER=${MPITER:-2}
kmod_load dm_service_time
kmod_load scsi_dh_alua
lio_target $IQN 127.0.0.1:3260 2 16
lio_portal $IQN 127.0.0.2:3260
need_prog "$GOISCSIADM"
ADM=$GOISCSIADM
goiscsid_start
for P in 127.0.0.1 127.0.0.2; do
	check "discovery $P" $ADM -m discovery -t st -p $P
	check "autoscan off $P" $ADM -m node -T $IQN -p $P -o update -n node.session.autoscan_en -v No
	check "login $P" $ADM -m node -T $IQN -p $P --login
done
SIDS=$(sessions | awk -v t=$IQN '$3 == t {print $1}' | tr '\n' ' ')
[ "$(echo $SIDS | wc -w)" = 2 ] || fail "want two sessions, have: $(sessions)"
multipath_conf yes
udev_standin_start
multipathd_start

# attach LUN: --scan-lun on each session, then mapinfo while multipathd runs.
attach() {
	for _at_s in $SIDS; do
		cmd_record "scan_lun$1_s$_at_s" $ADM -m session -r "$_at_s" --scan-lun "$1"
		[ "$CAP_RC" = 0 ] || fail "--scan-lun $1 on session $_at_s: $(cat "$CAP_ERR")"
	done
	if multipathd_ready; then mapinfo "$1"; else WWID=; fi
}

# mapinfo LUN waits for LUN's map to have both paths. Sets MAP (dm-N), MAPNAME, WWID.
mapinfo() {
	_mi_blk=$(lun_block "$(echo $SIDS | cut -d' ' -f1)" "$1")
	MAP=$(mpath_of "$_mi_blk")
	[ -n "$MAP" ] || fail "no multipath map above $_mi_blk (LUN $1)"
	_mi_two() { [ "$(slave_count "$MAP")" = 2 ]; }
	wait_until 20 _mi_two || fail "map $MAP has $(slave_count "$MAP") paths, want 2"
	MAPNAME=$(cat "/sys/block/$MAP/dm/name")
	WWID=$(sed 's/^mpath-//' "/sys/block/$MAP/dm/uuid")
}

# gone LUN [UUID] succeeds when no session has LUN (the VM's only SCSI devices are
# the sessions') and no dm device has UUID. Globs, not helpers: a fork costs under TCG.
gone() {
	for _go_d in /sys/class/scsi_device/*:*:*:"$1"; do
		[ -e "$_go_d" ] && return 1
	done
	[ -z "$2" ] || [ -z "$(dm_of_uuid "$2")" ]
}

# present LUN succeeds when both sessions have LUN with a disk.
present() {
	set -- /sys/class/scsi_device/*:*:*:"$1"/device/block/*
	[ -e "$1" ] && [ $# = 2 ]
}

# roundtrip NAMES: attach LUN 1, write 8 MiB through the map (buffered, no sync: the
# removal's flush must write them), remove, re-attach, read back.
roundtrip() {
	attach 1
	emit attached names "$1" map "$MAP" map_name "$MAPNAME" wwid "$WWID" slaves "$(ls /sys/block/$MAP/slaves | tr '\n' ' ')"
	dd if=/dev/urandom of=/tmp/data bs=1M count=8 2>/dev/null
	want=$(sha256sum </tmp/data | cut -d' ' -f1)
	dd if=/tmp/data of=/dev/$MAP bs=1M 2>/dev/null || fail "write to /dev/$MAP"
	cmd_record "remove_$1" $ADM -m node -T $IQN -p 127.0.0.1 --remove-lun 1
	rc=$CAP_RC
	if gone 1 "mpath-$WWID"; then left=no; else left=yes; fi
	emit removed names "$1" rc "$rc" left "$left" dm "$(ls /sys/block | grep dm- | tr '\n' ' ')" \
		target_sum "$(head -c 8388608 "$(lio_lun_file $IQN 1)" | sha256sum | cut -d' ' -f1)" want "$want"
	[ "$rc" = 0 ] || fail "--remove-lun 1 ($1): $(cat /tmp/cap/remove_$1.err)"
	attach 1
	got=$(dd if=/dev/$MAP bs=1M count=8 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
	emit reread names "$1" map "$MAP" map_name "$MAPNAME" want "$want" got "$got"
}

# 1. user_friendly_names yes: attach, data, remove, re-attach, read back.
roundtrip yes

# 2. os-brick's way beside it: multipath -f <WWID> while the map is named mpathN.
cmd_record obrick_flush_wwid multipath -f "$WWID"
if [ -n "$(dm_of_uuid "mpath-$WWID")" ]; then left=yes; else left=no; fi
emit obrick rc "$CAP_RC" map_left "$left" map_name "$MAPNAME" wwid "$WWID"

# 3. A process holds the map open: retries with backoff, then a clear error, and
# nothing removed.
sleep 600 <"/dev/$MAP" &
HOLD=$!
cmd_record busy $ADM -m node -T $IQN --remove-lun 1 --remove-tries 3
if [ -n "$(dm_of_uuid "mpath-$WWID")" ]; then mleft=yes; else mleft=no; fi
if present 1; then pleft=yes; else pleft=no; fi
emit busy rc "$CAP_RC" map_left "$mleft" paths_left "$pleft" holder "$HOLD"
# 4. Released during the retries (waits 1, 2, 4, 8 s), once goiscsid has logged the
# second: the removal completes on the third attempt.
retries() { grep -c 'remove LUN: retrying' /tmp/goiscsid.log; }
n0=$(retries)
t0=$(now_us)
$ADM -m node -T $IQN --remove-lun 1 --json >/tmp/release.json 2>/tmp/release.err &
REM=$!
second_wait() { [ "$(retries)" -ge $((n0 + 2)) ]; }
wait_until 20 second_wait || fail "goiscsid logged no second retry: $(tail -n 3 /tmp/goiscsid.log)"
kill $HOLD
wait $HOLD 2>/dev/null
wait $REM
rc=$?
emit release rc "$rc" ms "$(ms_since "$t0")" json_b64 "$(b64 /tmp/release.json)" stderr_b64 "$(b64 /tmp/release.err)" \
	left "$(gone 1 "mpath-$WWID" && echo no || echo yes)"
emit daemon_log retries "$(retries)"

# 5. user_friendly_names no: the map is named by its WWID.
multipath_conf no
multipathd reconfigure >/dev/null 2>&1
sleep 1
roundtrip no
cmd_record remove_no_again $ADM -m session -r "$(echo $SIDS | cut -d' ' -f1)" --remove-lun 1
[ "$CAP_RC" = 0 ] || fail "--remove-lun 1 by session: $(cat "$CAP_ERR")"

# 6. Detach LUN A while LUN B is attached, ITER times, A and B taking turns; the
# array unexports A after the host's detach (the seed's flow) and exports it again
# as the next B. The first MPITER iterations with multipathd making maps, the rest
# with paths alone (multipathd spends seconds of TCG time on each path).
attach 1
lio_add_lun $IQN 2 8
lio_unexport $IQN 2
A=1
B=2
BS_B=$LIO_BS
back=0
missing=0
t0=$(now_us)
i=0
while [ "$i" -lt "$ITER" ]; do
	i=$((i + 1))
	if [ "$i" = $((MPITER + 1)) ]; then
		emit concurrent_maps iterations "$MPITER" lun_back "$back" lun_missing "$missing" ms "$(ms_since "$t0")"
		multipathd shutdown >/dev/null 2>&1
		daemon_stop "$MULTIPATHD_PID"
		cmd_record remove_map_only $ADM -m node -T $IQN --remove-lun $A
		attach $A
		t1=$(now_us)
	fi
	AWWID=$WWID
	$ADM -m node -T $IQN --remove-lun $A >/tmp/det.out 2>&1 &
	DET=$!
	lio_export $IQN $B $BS_B
	for s in $SIDS; do
		$ADM -m session -r "$s" --scan-lun $B >/tmp/att.$s.out 2>&1 &
		eval "ATT_$s=\$!"
	done
	wait $DET || fail "iteration $i: detach of LUN $A: $(cat /tmp/det.out)"
	for s in $SIDS; do
		eval "wait \$ATT_$s" || fail "iteration $i: attach of LUN $B on session $s: $(cat /tmp/att.$s.out)"
	done
	lio_unexport $IQN $A
	BS_A=$LIO_BS
	gone $A "${AWWID:+mpath-$AWWID}" || back=$((back + 1))
	if ! present $B; then
		missing=$((missing + 1))
		emit missing iteration "$i" lun "$B" devices "$(iscsi_devices | tr '\n' ';')"
		attach $B
	fi
	if multipathd_ready; then mapinfo $B; else WWID=; fi
	log "iteration $i done"
	_x=$A
	A=$B
	B=$_x
	BS_B=$BS_A
done
emit concurrent iterations "$ITER" lun_back "$back" lun_missing "$missing" ms "$(ms_since "$t0")" \
	paths_only_ms "$(ms_since "$t1")"

# 7. Nothing left: the last LUN and LUN 0, then the sessions.
cmd_record remove_last $ADM -m node -T $IQN --remove-lun $A
cmd_record remove_lun0 $ADM -m node -T $IQN --remove-lun 0
check "logout" $ADM -m node -T $IQN --logout
emit final dm "$(ls /sys/block | grep -c dm-)" sd "$(ls /sys/block | grep -c sd)" sessions "$(session_count)" \
	mapper "$(ls /dev/mapper | grep -vc control)"
kill "$UDEV_STANDIN_PID" 2>/dev/null
goiscsid_stop
