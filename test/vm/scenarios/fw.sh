# Boot from SAN, firmware mode: the guest's firmware has an iBFT (qemu -acpitable,
# built by TestVMFirmware) naming a NIC (a virtio-net PCI function) and a LIO target
# on that NIC's address. In one boot, stock 2.1.8 and goiscsi each run the same
# iscsiadm lines (-m fw, -m discovery -t fw, -m fw -l, -U all), emitted as "fwgolden"
# records for the host to compare; the LUN the fw login brings is written by stock
# and read back by goiscsi. Env: FW_TARGET, FW_ADDR (the table's target and address).
for m in virtio_pci virtio_net iscsi_ibft; do kmod_load "$m"; done
[ -d /sys/firmware/ibft/initiator ] || fail "no /sys/firmware/ibft: the kernel did not take the iBFT ($(dmesg | grep -i ibft | tail -n 3))"
# The table as sysfs shows it: the host keeps it as the ibft package's test tree.
find /sys/firmware/ibft -type f | sort | while read -r f; do
	emit ibftfile path "$f" value "$(cat "$f")"
done
emit ibftlink path /sys/firmware/ibft/ethernet0/device target "$(readlink /sys/firmware/ibft/ethernet0/device)"
# virtio-net's interface hangs below a virtio device of the PCI function, not
# in its net directory: stock falls back to the table's MAC, as goiscsi does.
nic=
for n in /sys/class/net/*; do
	[ "$(cat "$n/address")" = "$(cat /sys/firmware/ibft/ethernet0/mac)" ] && nic=${n##*/}
done
[ -n "$nic" ] || fail "no network interface has the iBFT NIC's MAC: $(ls /sys/class/net)"
emit ibftnetdev name "$nic" address "$(cat "/sys/class/net/$nic/address")" device "$(readlink -f "/sys/class/net/$nic")"

# -N: the table's NIC up with its static address and a route to the target, by
# stock's iscsistart, then (all undone) by goiscsistart; the host compares what
# each printed and left.
need_prog "$GOISCSISTART"
for FW_PHASE in stock goiscsi; do
	start=/sbin/iscsistart
	[ "$FW_PHASE" = goiscsi ] && start=$GOISCSISTART
	run_capture "N$FW_PHASE" "$start" -N
	# up is the link's IFF_UP flag, which -N sets: its operstate follows the
	# carrier, which the NIC reports some time after, so reading it at once
	# compared how fast the two exited, not what they did.
	emit fwnic phase "$FW_PHASE" rc "$CAP_RC" stdout_b64 "$(b64 "$CAP_OUT")" stderr_b64 "$(b64 "$CAP_ERR")" \
		addr "$(ip -o -f inet addr show dev "$nic" | awk '{print $4}')" up "$(($(cat "/sys/class/net/$nic/flags") & 1))" \
		route "$(ip route show | grep "^$FW_ADDR " | tr -s ' ')"
	[ "$FW_PHASE" = goiscsi ] || { ip addr flush dev "$nic"; ip link set "$nic" down; }
done
lio_target "$FW_TARGET" "$FW_ADDR:3260" 1 16
mkdir -p /tmp/gbin && ln -sf "$GOISCSIADM" /tmp/gbin/iscsiadm

# fw_cases PHASE runs the case lines with "iscsiadm" (stock's, or goiscsiadm by that
# name) and emits each as a fwgolden record.
fw_cases() {
	_fc_n=0
	while IFS= read -r _fc_line; do
		case $_fc_line in '' | '#'*) continue ;; esac
		_fc_n=$((_fc_n + 1))
		eval "set -- $_fc_line"
		run_capture "fw$FW_PHASE$_fc_n" iscsiadm "$@"
		emit fwgolden phase "$FW_PHASE" n "$_fc_n" line "$_fc_line" rc "$CAP_RC" stdout_b64 "$(b64 "$CAP_OUT")" stderr_b64 "$(b64 "$CAP_ERR")"
	done <<CASES
-m fw
-m node
-m discovery -t fw
-m node -T $FW_TARGET -p $FW_ADDR:3260
-m discoverydb -P 1
-m discovery -t fw
-m node -T $FW_TARGET -p $FW_ADDR:3260
-m fw -l
-m fw -l
-m session
-m node -U all
-m session
-m discovery -t fw -I nosuch
-m fw -o show
CASES
}

# fw_disk waits for LUN 0 of the fw session and prints its block device.
fw_disk() {
	wait_until 20 sh -c ". /lib/goiscsi/lib.sh; [ -n \"\$(lun_block \$(session_sid $FW_TARGET) 0)\" ]" ||
		fail "$FW_PHASE: no block device for LUN 0 of the fw session: $(iscsi_devices)"
	lun_block "$(session_sid "$FW_TARGET")" 0
}

fw_reset() {
	sid=$(session_sid "$FW_TARGET")
	[ -z "$sid" ] || iscsiadm -m session -r "$sid" -u >/dev/null || fail "$FW_PHASE: logout of session $sid"
	rm -rf /etc/iscsi/nodes /etc/iscsi/send_targets /etc/iscsi/fw /etc/iscsi/goiscsi/nodes
}

# Stock first: its lines, then a pattern on the LUN.
FW_PHASE=stock
INITIATOR=stock initiator_start
fw_cases
disk=$(fw_disk)
dd if=/dev/urandom of=/tmp/fwpattern bs=1M count=4 2>/dev/null
dd if=/tmp/fwpattern of="/dev/$disk" bs=1M oflag=direct conv=fsync 2>/tmp/dd.err || fail "stock: write /dev/$disk: $(cat /tmp/dd.err)"
emit fwdata phase stock dev "$disk" sha "$(sha256sum </tmp/fwpattern | cut -d' ' -f1)"
fw_reset
iscsid_stop

# goiscsi: the same lines through goiscsid; what stock wrote reads back.
FW_PHASE=goiscsi
PATH=/tmp/gbin:$PATH
INITIATOR=goiscsi initiator_start
fw_cases
disk=$(fw_disk)
emit fwdata phase goiscsi dev "$disk" sha "$(dd if="/dev/$disk" bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
dd_verify "$disk" 4
emit fwdata phase goiscsi-after dev "$disk" sha "$(dd if="/dev/$disk" bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
fw_reset
goiscsid_stop

# -b: stock's iscsistart, then goiscsistart, log in from the iBFT with no daemon
# and exit with the session up; goiscsid then takes goiscsistart's session over
# (same SID, no new login) and -U all leaves it logged in.
for FW_PHASE in stock goiscsi; do
	start=/sbin/iscsistart
	[ "$FW_PHASE" = goiscsi ] && start=$GOISCSISTART
	run_capture "b$FW_PHASE" timeout 120 "$start" -b
	sid=$(session_sid "$FW_TARGET")
	# goiscsistart scans before it exits: LUN 0 is there at once.
	disk=$(lun_block "$sid" 0)
	emit fwstart phase "$FW_PHASE" rc "$CAP_RC" stdout_b64 "$(b64 "$CAP_OUT")" stderr_b64 "$(b64 "$CAP_ERR")" \
		sid "$sid" disk "$disk" daemons "$(pidof iscsid goiscsid)" \
		sha "$( [ -n "$disk" ] && dd if="/dev/$disk" bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
	[ -n "$sid" ] || fail "$FW_PHASE: no session after $start -b: $(cat "$CAP_ERR")"
	if [ "$FW_PHASE" = stock ]; then
		iscsid_start
		# iscsid first logs in again to the session it found ("operational
		# after recovery"): only then does it log out.
		wait_until 30 sh -c "$STOCK_ISCSIADM -m session -r $sid -u >/dev/null 2>&1" || fail "stock: logout of the iscsistart session"
		iscsid_stop
		continue
	fi
	goiscsid_start
	wait_until 10 sh -c "grep -q 'took over running session' /tmp/goiscsid.log" || fail "goiscsid did not take over session $sid: $(tail -n 5 /tmp/goiscsid.log)"
	run_capture Uall iscsiadm -m node -U all
	emit fwadopt sid "$sid" sid_after "$(session_sid "$FW_TARGET")" relogins "$(grep -c 'connection is operational now' /tmp/goiscsid.log)" \
		took_over "$(grep -c 'took over running session' /tmp/goiscsid.log)" \
		uall_rc "$CAP_RC" uall_err "$(cat "$CAP_ERR")" session "$(iscsiadm -m session 2>&1)" \
		sha "$(dd if="/dev/$disk" bs=1M count=4 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
	iscsiadm -m session -r "$sid" -u >/dev/null || fail "goiscsi: logout of the adopted boot session"
	goiscsid_stop
done
