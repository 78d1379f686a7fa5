# What os-brick and csi-lib-iscsi run, in their order, against INITIATOR's
# iscsiadm; each step's exit code and stderr are emitted, and the sysfs
# attributes udev's by-path names read are checked.
IQN=iqn.2003-01.org.example:consumer
P=127.0.0.1:3260
lio_target $IQN $P 2 8
initiator_start
step() { # NAME CMD...: runs an iscsiadm command line, emits its outcome
	_st_name=$1
	shift
	run_capture "$_st_name" "$@"
	emit step name "$_st_name" rc "$CAP_RC" stdout_b64 "$(b64 $CAP_OUT)" stderr_b64 "$(b64 $CAP_ERR)"
}

# os-brick (_connect_to_iscsi_portal_unsafe and friends)
step ob_discovery $ADM -m discovery -t sendtargets -p $P
step ob_show $ADM -m node -T $IQN -p $P
[ "$CAP_RC" = 0 ] || step ob_new $ADM -m node -T $IQN -p $P --interface default --op new
step ob_scan_manual $ADM -m node -T $IQN -p $P --op update -n node.session.scan -v manual
step ob_startup $ADM -m node -T $IQN -p $P --op update -n node.startup -v automatic
step ob_login $ADM -m node -T $IQN -p $P --login
step ob_session $ADM -m session
SID=$(awk -v t=$IQN '$4 == t {gsub(/[][]/, "", $2); print $2}' "$CAP_OUT")
HOST=$(sessions | awk -v s="$SID" '$1 == s {print $2}')
emit parsed sid "$SID" host "$HOST"
# os-brick scans the one LUN it attaches itself.
echo "0 0 1" >/sys/class/scsi_host/host$HOST/scan
lun1() { [ -n "$(lun_block "$SID" 1)" ]; }
wait_until 10 lun1
emit attach lun1 "$(lun_block "$SID" 1)" lun0 "$(lun_block "$SID" 0)" \
	targetname "$(cat /sys/class/iscsi_session/session$SID/targetname)" \
	persistent_address "$(cat /sys/class/iscsi_connection/connection$SID:0/persistent_address)" \
	persistent_port "$(cat /sys/class/iscsi_connection/connection$SID:0/persistent_port)" \
	topology "$(readlink -f /sys/class/iscsi_session/session$SID/device | sed 's|.*/devices/||')"
step ob_session_p3 $ADM -m session -r "$SID" -P 3
step ob_logout $ADM -m node -T $IQN -p $P --logout
step ob_delete $ADM -m node -T $IQN -p $P --op delete

# csi-lib-iscsi (iscsiadm.go)
step csi_iface $ADM -m iface -I default -o show
step csi_discoverydb_new $ADM -m discoverydb -t sendtargets -p $P -I default -o new
step csi_discover $ADM -m discoverydb -t sendtargets -p $P -I default --discover
step csi_update $ADM -m node -p $P -T $IQN -I default -o update -n node.session.scan -v manual
step csi_login $ADM -m node -p $P -T $IQN -I default --login
step csi_logout $ADM -m node -p $P -T $IQN -I default --logout
step csi_delete $ADM -m node -p $P -T $IQN -I default -o delete
step csi_discoverydb_delete $ADM -m discoverydb -t sendtargets -p $P -I default -o delete
daemon_stop
