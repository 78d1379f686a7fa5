# Helper library of the goiscsi test VM (busybox sh). Sourced by init, by every
# scenario and by the interactive shell.
#
# busybox sh has no `local`: every helper uses variables with its own prefix, so that a
# helper never overwrites a caller's loop counter. Wait for background jobs by pid only.

RESULTS=/dev/ttyS1
LIO=/sys/kernel/config/target
LIO_DIR=/tmp/lio
STOCK_ISCSID="/sbin/iscsid -f"
STOCK_ISCSIADM=/sbin/iscsiadm
TC=/sbin/tc # iproute2's tc: busybox tc has no netem
# The static goiscsi binaries the host built (test/vm/binaries.go); the environment
# of a run may point them elsewhere. Missing ones are not in the initramfs.
export GOISCSID=${GOISCSID:-/usr/local/sbin/goiscsid}
export GOISCSIADM=${GOISCSIADM:-/usr/local/sbin/goiscsiadm}
export GOISCSISTART=${GOISCSISTART:-/usr/local/sbin/goiscsistart}
export TESTTARGET=${TESTTARGET:-/usr/local/sbin/testtarget}
export ATTACHLUN=${ATTACHLUN:-/usr/local/sbin/attachlun}
export STOCK_ISCSID STOCK_ISCSIADM

# emit TYPE [KEY VALUE]... writes one JSON object {"type":TYPE,KEY:VALUE,...} to the
# results port. Every value is a string; keys ending in _b64 hold base64 (see b64).
# Opening the port anew for each record makes its close wait until the bytes are out.
emit() {
	awk 'function esc(s) {
		gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s)
		gsub(/\r/, "\\r", s); gsub(/\n/, "\\n", s); gsub(/[\001-\037]/, "?", s)
		return s
	}
	BEGIN {
		printf "{\"type\":\"%s\"", esc(ARGV[1])
		for (i = 2; i + 1 < ARGC; i += 2) printf ",\"%s\":\"%s\"", esc(ARGV[i]), esc(ARGV[i + 1])
		printf "}\n"
		exit
	}' "$@" >"$RESULTS" || echo "emit $1: could not write the record to $RESULTS" >&2
}

# b64 FILE prints FILE base64-encoded on one line.
b64() { base64 -w 0 "$1"; }

# emit_file NAME PATH sends a guest file to the host gzipped, as a "file" record
# (vmrun -files DIR writes it out as DIR/NAME.gz): profiles, traces, logs.
emit_file() { emit file name "$1" gz_b64 "$(gzip -c "$2" | base64 -w 0)"; }

# b64args ARG... prints the arguments NUL-terminated and base64-encoded, so that the
# host gets them back exactly (the golden cases store argv this way).
b64args() { printf '%s\0' "$@" | base64 -w 0; }

# log MSG... prints a progress line on the console.
log() { echo "[vm $(cut -d' ' -f1 /proc/uptime)] $*"; }

# fail MSG... records an error and ends the scenario with status 1.
fail() {
	echo "FAIL: $*" >&2
	emit error msg "$*"
	exit 1
}

# check DESC CMD... runs CMD and fails the scenario with DESC if it fails.
check() {
	_ck_desc=$1
	shift
	"$@" || fail "$_ck_desc (command: $*)"
}

# now_us prints the wall clock in microseconds: from busybox's $EPOCHREALTIME (see
# clock), else adjtimex (busybox date has no %N), else GNU date (the Debian guest
# has no adjtimex).
now_us() {
	if [ -n "${EPOCHREALTIME:-}" ]; then
		clock _nu
		echo "$_nu"
	elif command -v adjtimex >/dev/null; then
		adjtimex | awk '/tv_sec/ {s = $2} /tv_usec/ {u = $2} END {printf "%d%06d\n", s, u}'
	else
		date +%s%6N
	fi
}

# ms_since START_US prints the milliseconds (3 decimals) elapsed since START_US.
ms_since() {
	clock _ms_end
	awk -v a="$1" -v b="$_ms_end" 'BEGIN {printf "%.3f\n", (b - a) / 1000}'
}

# clock VAR sets VAR to the wall clock in microseconds in this shell, without
# starting a process where busybox gives $EPOCHREALTIME: $(now_us) without it
# forks a subshell, adjtimex and awk, which under TCG put 10-20 ms into an
# interval.
clock() {
	if [ -n "${EPOCHREALTIME:-}" ]; then
		_clk=$EPOCHREALTIME
		eval "$1=${_clk%.*}${_clk#*.}"
	else
		eval "$1=\$(now_us)"
	fi
}

# timed VAR CMD... runs CMD and sets VAR to its wall time in milliseconds (3
# decimals), the clock read just before and after it (see clock); it returns
# CMD's status.
timed() {
	_tv=$1
	shift
	clock _ta
	"$@"
	_trc=$?
	clock _tb
	eval "$_tv=$(awk -v a="$_ta" -v b="$_tb" 'BEGIN {printf "%.3f", (b - a) / 1000}')"
	return $_trc
}

# wait_until SECONDS CMD... polls CMD every 50 ms until it succeeds; returns 1 after
# SECONDS.
wait_until() {
	read -r _wu_up _wu_idle </proc/uptime # read, not cut: no process per poll
	_wu_end=$((${_wu_up%.*} + $1 + 1))
	shift
	while ! "$@"; do
		read -r _wu_up _wu_idle </proc/uptime
		[ "${_wu_up%.*}" -ge "$_wu_end" ] && return 1
		sleep 0.05
	done
	return 0
}

# kmod_load NAME inserts module NAME and its dependencies, skipping loaded ones.
kmod_load() {
	[ -f "/lib/modules/goiscsi/$1.deps" ] || fail "kmod_load: no module $1 in the initramfs"
	for _km_ko in $(cat "/lib/modules/goiscsi/$1.deps"); do
		_km_name=$(echo "${_km_ko%.ko}" | tr - _)
		[ -d "/sys/module/$_km_name/sections" ] && continue
		insmod "/lib/modules/goiscsi/$_km_ko" 2>/tmp/insmod.err ||
			grep -q 'File exists' /tmp/insmod.err || fail "insmod $_km_ko: $(cat /tmp/insmod.err)"
	done
}

# ---------------------------------------------------------------------------------
# LIO target (configfs). Every target has TPG 1 in demo mode (any initiator, all LUNs,
# writable); each LUN is a fileio backstore on a sparse file in /tmp/lio.

lio_tpg() { echo "$LIO/iscsi/$1/tpgt_1"; }

# lio_add_lun IQN LUN [SIZE_MIB] adds a LUN to a target, also while sessions are live.
lio_add_lun() {
	_al_t=$(lio_tpg "$1")
	_al_size=${3:-64}
	mkdir -p "$LIO_DIR"
	_al_n=$(($(cat "$LIO_DIR/seq" 2>/dev/null || echo 0) + 1))
	echo "$_al_n" >"$LIO_DIR/seq"
	_al_bs=$LIO/core/fileio_0/bs$_al_n
	mkdir -p "$_al_bs" || fail "lio: mkdir $_al_bs"
	echo "fd_dev_name=$LIO_DIR/bs$_al_n.img,fd_dev_size=$((_al_size * 1048576))" >"$_al_bs/control" ||
		fail "lio: backstore control bs$_al_n"
	echo 1 >"$_al_bs/enable" || fail "lio: enable backstore bs$_al_n"
	# A unit serial of its own, as every array LUN has: LIO derives the LUN's NAA
	# identifier (VPD page 83, the WWID multipath groups paths by) from it, and
	# without one every LUN has the same identifier.
	cat /proc/sys/kernel/random/uuid >"$_al_bs/wwn/vpd_unit_serial" || fail "lio: unit serial of bs$_al_n"
	mkdir "$_al_t/lun/lun_$2" || fail "lio: mkdir lun_$2 of $1"
	ln -s "$_al_bs" "$_al_t/lun/lun_$2/bs$_al_n" || fail "lio: link lun_$2 of $1"
}

# lio_lun_file IQN LUN prints the backing file of a LUN (to check data on the target side).
lio_lun_file() {
	for _lf_l in "$(lio_tpg "$1")/lun/lun_$2"/*; do
		[ -L "$_lf_l" ] && echo "$LIO_DIR/$(basename "$(readlink "$_lf_l")").img"
	done
}

# lio_del_lun IQN LUN removes a LUN and its backstore, also while sessions are live.
lio_del_lun() {
	_dl_d=$(lio_tpg "$1")/lun/lun_$2
	for _dl_l in "$_dl_d"/*; do
		[ -L "$_dl_l" ] || continue
		_dl_bs=$(basename "$(readlink "$_dl_l")")
		rm "$_dl_l" || fail "lio: unlink $_dl_l"
		rmdir "$_dl_d" || fail "lio: rmdir $_dl_d"
		rmdir "$LIO/core/fileio_0/$_dl_bs" || fail "lio: rmdir backstore $_dl_bs"
		rm -f "$LIO_DIR/$_dl_bs.img"
	done
}

# lio_unexport IQN LUN takes LUN off the target and keeps its backstore, whose name it
# leaves in LIO_BS (for lio_export). Cheaper than lio_del_lun and lio_add_lun.
lio_unexport() {
	LIO_BS=
	for _ux_l in "$(lio_tpg "$1")/lun/lun_$2"/*; do
		[ -L "$_ux_l" ] || continue
		LIO_BS=${_ux_l##*/}
		rm "$_ux_l" || fail "lio: unlink $_ux_l"
		rmdir "$(lio_tpg "$1")/lun/lun_$2" || fail "lio: rmdir lun_$2 of $1"
	done
	[ -n "$LIO_BS" ] || fail "lio: $1 has no LUN $2"
}

# lio_export IQN LUN BS exports backstore BS (from lio_unexport) as LUN.
lio_export() {
	mkdir "$(lio_tpg "$1")/lun/lun_$2" || fail "lio: mkdir lun_$2 of $1"
	ln -s "$LIO/core/fileio_0/$3" "$(lio_tpg "$1")/lun/lun_$2/$3" || fail "lio: link lun_$2 of $1"
}

# lio_target IQN ADDR:PORT NLUNS [SIZE_MIB] creates an enabled target with NLUNS LUNs
# (0..NLUNS-1) listening on ADDR:PORT, without authentication.
lio_target() {
	_lt_t=$(lio_tpg "$1")
	mkdir -p "$_lt_t" || fail "lio: mkdir $_lt_t"
	_lt_i=0
	while [ "$_lt_i" -lt "$3" ]; do
		lio_add_lun "$1" "$_lt_i" "$4"
		_lt_i=$((_lt_i + 1))
	done
	lio_portal "$1" "$2"
	echo 0 >"$_lt_t/attrib/authentication"
	echo 1 >"$_lt_t/attrib/generate_node_acls"
	echo 0 >"$_lt_t/attrib/demo_mode_write_protect"
	echo 1 >"$_lt_t/enable" || fail "lio: enable $1"
}

# lio_portal IQN ADDR:PORT adds a network portal to a target.
lio_portal() {
	[ -d "$(lio_tpg "$1")/np/$2" ] || mkdir "$(lio_tpg "$1")/np/$2" || fail "lio: portal $2 for $1"
}

# lio_chap IQN USER SECRET [MUTUAL_USER MUTUAL_SECRET] turns CHAP on (mutual CHAP when
# the target's own name and secret are given). printf, not echo: a trailing newline
# would become part of the name.
lio_chap() {
	_ch_t=$(lio_tpg "$1")
	printf '%s' "$2" >"$_ch_t/auth/userid"
	printf '%s' "$3" >"$_ch_t/auth/password"
	if [ $# -ge 5 ]; then
		printf '%s' "$4" >"$_ch_t/auth/userid_mutual"
		printf '%s' "$5" >"$_ch_t/auth/password_mutual"
	fi
	echo 1 >"$_ch_t/attrib/authentication" || fail "lio: CHAP on $1"
}

# lio_nochap IQN turns authentication off again.
lio_nochap() { echo 0 >"$(lio_tpg "$1")/attrib/authentication"; }

# lio_del_target IQN removes a target with its portals and LUNs.
lio_del_target() {
	_dt_t=$(lio_tpg "$1")
	[ -d "$_dt_t" ] || return 0
	echo 0 >"$_dt_t/enable"
	for _dt_np in "$_dt_t"/np/*; do
		[ -d "$_dt_np" ] && rmdir "$_dt_np"
	done
	for _dt_lun in "$_dt_t"/lun/lun_*; do
		[ -d "$_dt_lun" ] && lio_del_lun "$1" "${_dt_lun##*lun_}"
	done
	rmdir "$_dt_t" "$LIO/iscsi/$1" || fail "lio: remove target $1"
}

# lio_targets prints the IQNs of all LIO iSCSI targets.
lio_targets() {
	for _ls_t in "$LIO"/iscsi/iqn.* "$LIO"/iscsi/eui.* "$LIO"/iscsi/naa.*; do
		[ -d "$_ls_t" ] && basename "$_ls_t"
	done
}

# ---------------------------------------------------------------------------------
# Network emulation on lo. A qdisc on lo delays both directions: "delay 50ms" gives
# 100 ms round trips.

# netem ARGS... sets the netem qdisc on lo, e.g. `netem delay 50ms` or `netem loss 100%`.
netem() { "$TC" qdisc replace dev lo root netem "$@" || fail "tc netem $*"; }

# netem_clear removes any qdisc from lo.
netem_clear() { "$TC" qdisc del dev lo root 2>/dev/null || true; }

# ---------------------------------------------------------------------------------
# SCSI devices seen by the initiator (sysfs).

# sessions prints "SID HOST TARGETNAME" for every iSCSI session.
sessions() {
	for _ss_s in /sys/class/iscsi_session/session*; do
		[ -d "$_ss_s" ] || continue
		_ss_dev=$(readlink -f "$_ss_s/device")
		_ss_host=${_ss_dev%/session*}
		echo "${_ss_s##*session} ${_ss_host##*host} $(cat "$_ss_s/targetname")"
	done
}

# session_count prints how many iSCSI sessions exist
# (one glob, no process: cheap enough to poll during a login storm).
session_count() {
	set -- /sys/class/iscsi_session/session*
	[ -e "$1" ] && echo $# || echo 0
}

# session_sid IQN prints the SID of the (first) session to target IQN.
session_sid() { sessions | awk -v t="$1" '$3 == t {print $1; exit}'; }

# session_devices SID prints "H:C:T:L BLOCK" for every SCSI device of the session
# ("-" while the device has no block device).
session_devices() {
	for _sd_d in /sys/class/iscsi_session/session"$1"/device/target*/*:*:*:*; do
		[ -d "$_sd_d" ] || continue
		_sd_blk=$(ls "$_sd_d/block" 2>/dev/null | head -n 1)
		echo "${_sd_d##*/} ${_sd_blk:--}"
	done
}

# iscsi_devices prints "SID H:C:T:L BLOCK" for every SCSI device of every session.
iscsi_devices() {
	for _id_sid in $(sessions | cut -d' ' -f1); do
		session_devices "$_id_sid" | sed "s/^/$_id_sid /"
	done
}

# lsiscsi prints an lsblk-like table of the iSCSI devices: target, H:C:T:L, block
# device and size.
lsiscsi() {
	printf '%-4s %-10s %-6s %8s  %s\n' SID H:C:T:L BLOCK SIZE TARGET
	sessions | while read -r _li_sid _li_host _li_tgt; do
		session_devices "$_li_sid" | while read -r _li_hctl _li_blk; do
			_li_size=-
			[ -r "/sys/block/$_li_blk/size" ] &&
				_li_size="$(($(cat "/sys/block/$_li_blk/size") / 2048))M"
			printf '%-4s %-10s %-6s %8s  %s\n' "$_li_sid" "$_li_hctl" "$_li_blk" "$_li_size" "$_li_tgt"
		done
	done
}

# lun_block SID LUN prints the block device name of LUN of a session, or nothing.
lun_block() { session_devices "$1" | awk -v l="$2" '{n = split($1, a, ":"); if (a[n] == l && $2 != "-") print $2}'; }

# ---------------------------------------------------------------------------------
# Data checks.

# dd_verify DEV MIB [TARGET_FILE] writes MIB MiB of random data to /dev/DEV with
# O_DIRECT, reads it back with O_DIRECT and fails unless both checksums match; with
# TARGET_FILE (the LUN's backing file on the target) it also checks the target's copy.
dd_verify() {
	dd if=/dev/urandom of=/tmp/pattern bs=1M count="$2" 2>/dev/null || fail "dd_verify: make pattern"
	_dv_want=$(sha256sum </tmp/pattern | cut -d' ' -f1)
	_dv_t0=$(now_us)
	dd if=/tmp/pattern of="/dev/$1" bs=1M oflag=direct conv=fsync 2>/tmp/dd.err || fail "dd write /dev/$1: $(cat /tmp/dd.err)"
	_dv_wms=$(ms_since "$_dv_t0")
	_dv_t0=$(now_us)
	_dv_got=$(dd if="/dev/$1" bs=1M count="$2" iflag=direct 2>/tmp/dd.err | sha256sum | cut -d' ' -f1)
	_dv_rms=$(ms_since "$_dv_t0")
	_dv_tgt=
	[ -n "${3:-}" ] && _dv_tgt=$(head -c $(($2 * 1048576)) "$3" | sha256sum | cut -d' ' -f1)
	emit dd dev "$1" mib "$2" want "$_dv_want" got "$_dv_got" target "$_dv_tgt" write_ms "$_dv_wms" read_ms "$_dv_rms"
	rm -f /tmp/pattern
	[ "$_dv_got" = "$_dv_want" ] || fail "dd_verify: /dev/$1 read back $_dv_got, wrote $_dv_want"
	[ -z "${3:-}" ] || [ "$_dv_tgt" = "$_dv_want" ] || fail "dd_verify: target file $3 holds $_dv_tgt, wrote $_dv_want"
}

# written_sectors DEV prints how many sectors have been written to /dev/DEV.
written_sectors() { awk '{print $7}' "/sys/block/$1/stat"; }

# wait_writing DEV BEFORE waits up to 20 s until more than BEFORE sectors (what
# written_sectors printed before a write began) have reached /dev/DEV: the write
# is under way.
wait_writing() {
	_ww_more() { [ "$(written_sectors "$1")" -gt "$2" ]; }
	wait_until 20 _ww_more "$1" "$2" || fail "no write reached /dev/$1"
}

# ---------------------------------------------------------------------------------
# Initiator daemons. A daemon runs in its own session (setsid): stock iscsid signals
# its whole process group when it stops.

# stock_ready succeeds once stock iscsid listens on its abstract socket.
stock_ready() { grep -q '@ISCSIADM_ABSTRACT_NAMESPACE' /proc/net/unix; }

# daemon_start LOG READY_CMD CMD... starts CMD in its own session with output to LOG and
# waits up to 10 s for READY_CMD (a shell command line) to succeed. Sets DAEMON_PID.
daemon_start() {
	_ds_log=$1
	_ds_ready=$2
	shift 2
	setsid "$@" >"$_ds_log" 2>&1 &
	DAEMON_PID=$!
	wait_until 10 sh -c ". /lib/goiscsi/lib.sh; $_ds_ready" || fail "daemon $* not ready after 10 s: $(tail -n 5 "$_ds_log")"
	kill -0 "$DAEMON_PID" 2>/dev/null || fail "daemon $* exited: $(tail -n 5 "$_ds_log")"
}

# daemon_stop [PID] stops a daemon started by daemon_start (SIGTERM, SIGKILL after 10 s)
# and reaps it.
daemon_stop() {
	_dp_pid=${1:-$DAEMON_PID}
	[ -n "$_dp_pid" ] || return 0
	kill -TERM "$_dp_pid" 2>/dev/null
	wait_until 10 sh -c "! kill -0 $_dp_pid 2>/dev/null || grep -q '^State:.*Z' /proc/$_dp_pid/status" ||
		kill -KILL "$_dp_pid" 2>/dev/null
	wait "$_dp_pid" 2>/dev/null
	[ "$_dp_pid" = "$DAEMON_PID" ] && DAEMON_PID=
	return 0
}

# iscsid_start starts stock iscsid in the foreground (log /tmp/iscsid.log).
iscsid_start() { daemon_start /tmp/iscsid.log stock_ready $STOCK_ISCSID; }

# iscsid_stop stops it.
iscsid_stop() { daemon_stop; }

# rss_kb PID prints the resident set size of a process in kB.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# cpu_ms PID prints the CPU time (user + system) a process and the children it
# has reaped have used, in ms (USER_HZ is 100 on x86): iscsid forks a child for
# each scan, whose CPU (the kernel probing the LUNs) is the daemon's work too.
cpu_ms() { awk '{print ($14 + $15 + $16 + $17) * 10}' "/proc/$1/stat" 2>/dev/null; }

# sys_ms PID prints the part of it spent in the kernel (system calls: for a
# daemon, the kernel's work on its netlink requests and sysfs writes).
sys_ms() { awk '{print ($15 + $17) * 10}' "/proc/$1/stat" 2>/dev/null; }

# busy_ms prints the CPU time all CPUs have spent not idle since boot, in ms:
# the difference over a step, against its wall time, says whether the step
# computed or waited.
busy_ms() { awk '/^cpu / {print ($2 + $3 + $4 + $7 + $8) * 10; exit}' /proc/stat; }

# run_capture NAME CMD... runs CMD, keeping its stdout, stderr and exit status in
# /tmp/cap/NAME.{out,err,rc} and in CAP_RC, CAP_OUT, CAP_ERR (file names).
run_capture() {
	mkdir -p /tmp/cap
	CAP_OUT=/tmp/cap/$1.out
	CAP_ERR=/tmp/cap/$1.err
	shift
	"$@" >"$CAP_OUT" 2>"$CAP_ERR" </dev/null
	CAP_RC=$?
}

# cmd_record NAME CMD... runs CMD (run_capture) and emits a "cmd" record: its exit
# status, time, stdout and stderr (Result.Cmd on the host).
cmd_record() {
	_cr_name=$1
	shift
	_cr_t0=$(now_us)
	run_capture "$_cr_name" "$@"
	emit cmd name "$_cr_name" rc "$CAP_RC" ms "$(ms_since "$_cr_t0")" stdout_b64 "$(b64 "$CAP_OUT")" stderr_b64 "$(b64 "$CAP_ERR")"
}

# goiscsid_ready succeeds once goiscsid listens on its management socket and
# on stock iscsiadm's abstract one.
goiscsid_ready() { [ -S /run/goiscsid/goiscsid.sock ] && stock_ready; }

# need_prog PATH fails the scenario unless the program is in the initramfs.
need_prog() { [ -x "$1" ] || fail "$1 is not in the initramfs (its package has no main yet, or did not build)"; }

# goiscsid_start [ARGS...] starts $GOISCSID -f in its own session (log
# /tmp/goiscsid.log) and waits up to 10 s for /run/goiscsid/goiscsid.sock. ARGS
# default to "-d 1"; the daemon takes -c CONFIG, -i INITIATORNAME_FILE, -d LEVEL.
# Sets GOISCSID_PID (and DAEMON_PID).
goiscsid_start() {
	need_prog "$GOISCSID"
	[ $# -gt 0 ] || set -- -d 1
	daemon_start /tmp/goiscsid.log goiscsid_ready "$GOISCSID" -f "$@"
	GOISCSID_PID=$DAEMON_PID
}

# goiscsid_stop stops the goiscsid that goiscsid_start started.
goiscsid_stop() {
	[ -n "$GOISCSID_PID" ] || return 0
	daemon_stop "$GOISCSID_PID"
	GOISCSID_PID=
}

# initiator_start starts the daemon of $INITIATOR and sets ADM to its
# iscsiadm: "stock" (the default) iscsid and stock iscsiadm, "goiscsi" goiscsid
# and goiscsiadm, "stockadm" goiscsid and stock iscsiadm (what a host running
# goiscsi gives consumers that run open-iscsi's iscsiadm, or ship their own).
initiator_start() {
	case ${INITIATOR:-stock} in
	goiscsi)
		need_prog "$GOISCSIADM"
		ADM=$GOISCSIADM
		goiscsid_start
		;;
	stockadm)
		ADM=$STOCK_ISCSIADM
		goiscsid_start
		;;
	*)
		ADM=$STOCK_ISCSIADM
		iscsid_start
		;;
	esac
}

# testtarget_start CONFIG starts the Go test target (test/target) with a JSON
# configuration, its control socket at /run/testtarget.sock; sets TT (the command)
# and TTPID.
testtarget_start() {
	need_prog "$TESTTARGET"
	TT=$TESTTARGET
	setsid $TT serve -config "$1" -control /run/testtarget.sock >/tmp/testtarget.log 2>&1 &
	TTPID=$!
	wait_until 10 sh -c '[ -S /run/testtarget.sock ]' || fail "test target did not start: $(tail -n 5 /tmp/testtarget.log)"
}

# ---------------------------------------------------------------------------------
# dm-multipath with Debian's multipath-tools. The VM has no udev, so a stand-in does
# for multipathd what udev's events would, as little as it needs: a udev database
# entry per disk ("I:1", which makes libudev call the disk initialized); for each disk
# the kernel adds or removes, `multipathd add|del path` (what multipathd does on
# udev's add and remove events); and for each "change" of a multipath map,
# `multipathd add map` (what it does on udev's change event: without it multipathd
# holds back a new map's reloads, such as adding its second path, for 30 s). busybox's
# uevent applet runs it for every kernel uevent. WWIDs come from VPD page 83 over
# SG_IO (uid_attribute "": no udev ID_SERIAL); multipath-tools' own code reads them.
# libdevmapper makes the /dev/mapper nodes itself when udev does not run.

# multipath_conf YES|NO writes /etc/multipath.conf with user_friendly_names YES|NO and
# every SCSI disk a path (find_multipaths no).
multipath_conf() {
	mkdir -p /etc/multipath
	cat >/etc/multipath.conf <<MPCONF
defaults {
	user_friendly_names $1
	find_multipaths no
	uid_attribute ""
	polling_interval 5
}
MPCONF
}

# udev_standin_start starts the uevent handler (log /tmp/uevents.log) and writes the
# database entries of the disks there already.
udev_standin_start() {
	mkdir -p /run/udev/data
	for _us_b in /sys/block/sd*; do
		[ -e "$_us_b/dev" ] && echo "I:1" >"/run/udev/data/b$(cat "$_us_b/dev")"
	done
	cat >/tmp/udev-standin <<'HANDLER'
#!/bin/sh
# One kernel uevent (busybox uevent passes it in the environment).
[ "$SUBSYSTEM" = block ] && [ "$DEVTYPE" = disk ] || exit 0
mpd() { grep -q '@/org/kernel/linux/storage/multipathd' /proc/net/unix && multipathd "$@" >>/tmp/uevents.log 2>&1; }
case "$ACTION $DEVNAME" in
"add sd"*)
	echo "add $DEVNAME $MAJOR:$MINOR" >>/tmp/uevents.log
	echo "I:1" >"/run/udev/data/b$MAJOR:$MINOR"
	mpd add path "$DEVNAME" ;;
"remove sd"*)
	echo "remove $DEVNAME $MAJOR:$MINOR" >>/tmp/uevents.log
	rm -f "/run/udev/data/b$MAJOR:$MINOR"
	mpd del path "$DEVNAME" ;;
"change dm-"*)
	case "$(cat "/sys/block/$DEVNAME/dm/uuid" 2>/dev/null)" in
	mpath-*)
		name=$(cat "/sys/block/$DEVNAME/dm/name")
		echo "change $DEVNAME $name" >>/tmp/uevents.log
		mpd add map "$name" ;;
	esac ;;
esac
exit 0
HANDLER
	chmod +x /tmp/udev-standin
	setsid uevent /tmp/udev-standin >/dev/null 2>&1 &
	UDEV_STANDIN_PID=$!
}

# multipathd_ready succeeds once multipathd listens on its socket.
multipathd_ready() { grep -q '@/org/kernel/linux/storage/multipathd' /proc/net/unix; }

# multipathd_start starts multipathd in the foreground (log /tmp/multipathd.log) and
# waits for its socket. Sets MULTIPATHD_PID.
multipathd_start() {
	daemon_start /tmp/multipathd.log multipathd_ready multipathd -d -s
	MULTIPATHD_PID=$DAEMON_PID
}

# dm_of_uuid UUID prints the dm-N whose device-mapper uuid is UUID, or nothing.
dm_of_uuid() {
	for _du_d in /sys/block/dm-*; do
		[ "$(cat "$_du_d/dm/uuid" 2>/dev/null)" = "$1" ] && echo "${_du_d##*/}"
	done
}

# mpath_of BLOCK prints the dm-N of the multipath map above disk BLOCK, or nothing.
mpath_of() {
	for _mo_h in /sys/block/"$1"/holders/dm-*; do
		[ -e "$_mo_h" ] || continue
		case "$(cat "$_mo_h/dm/uuid")" in mpath-*) echo "${_mo_h##*/}" ;; esac
	done
}

# slave_count DM prints how many paths map DM has.
slave_count() { ls "/sys/block/$1/slaves" 2>/dev/null | wc -l; }
