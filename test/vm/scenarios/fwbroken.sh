# A boot table whose NIC is no PCI function of the guest and whose MAC no interface
# has (the guest has no NIC at all): stock 2.1.8 and goiscsi each print the table
# (-m fw, iscsistart -f), make its record (-m discovery -t fw) and try -N; the host
# compares. goiscsistart -b must then fail promptly with a clear error, not hang.
kmod_load iscsi_ibft
[ -d /sys/firmware/ibft/initiator ] || fail "no /sys/firmware/ibft: the kernel did not take the iBFT ($(dmesg | grep -i ibft | tail -n 3))"
mkdir -p /tmp/gbin && ln -sf "$GOISCSIADM" /tmp/gbin/iscsiadm && ln -sf "$GOISCSISTART" /tmp/gbin/iscsistart
for FW_PHASE in stock goiscsi; do
	dir=/sbin
	[ "$FW_PHASE" = goiscsi ] && dir=/tmp/gbin
	n=0
	while IFS= read -r line; do
		n=$((n + 1))
		eval "set -- $line"
		prog=$1
		shift
		run_capture "broken$FW_PHASE$n" "$dir/$prog" "$@"
		emit fwbroken phase "$FW_PHASE" n "$n" line "$line" rc "$CAP_RC" stdout_b64 "$(b64 "$CAP_OUT")" stderr_b64 "$(b64 "$CAP_ERR")"
	done <<CASES
iscsiadm -m fw
iscsiadm -m discovery -t fw
iscsistart -f
iscsistart -N
CASES
	rm -rf /etc/iscsi/nodes /etc/iscsi/goiscsi/nodes /etc/iscsi/fw
done
t0=$(now_us)
run_capture bgo timeout 60 "$GOISCSISTART" -b -P node.session.initial_login_retry_max=1 -P "node.conn[0].timeo.login_timeout=2"
emit fwbrokenstart rc "$CAP_RC" ms "$(ms_since "$t0")" stdout_b64 "$(b64 "$CAP_OUT")" stderr_b64 "$(b64 "$CAP_ERR")" sessions "$(session_count)"
