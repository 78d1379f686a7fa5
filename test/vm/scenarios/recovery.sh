# Recovery: the network drops for a while during writes (netem loss 100% on lo);
# the kernel reports a connection error, the initiator logs in again with the same
# session, the writes complete and read back identical. Then the daemon is killed
# (SIGKILL) and started again: the session stays, I/O goes on, and the new daemon
# logs it out. Env: INITIATOR (stock or goiscsi), BLIP (seconds, default 8).
IQN=iqn.2003-01.org.example:recovery
P=127.0.0.1:3260
lio_target $IQN $P 1 64
initiator_start
$ADM -m discovery -t st -p 127.0.0.1 >/dev/null || fail "discovery"
# Faster NOP timeouts so the blip is noticed within seconds.
$ADM -m node -T $IQN -p $P -o update -n node.conn[0].timeo.noop_out_interval -v 2 >/dev/null
$ADM -m node -T $IQN -p $P -o update -n node.conn[0].timeo.noop_out_timeout -v 2 >/dev/null
$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login"
SID=$(session_sid $IQN)
has() { [ -n "$(lun_block "$SID" 0)" ]; }
wait_until 20 has || fail "no block device"
DEV=$(lun_block "$SID" 0)

dd if=/dev/urandom of=/tmp/pattern bs=1M count=24 2>/dev/null
want=$(sha256sum </tmp/pattern | cut -d' ' -f1)
t0=$(now_us)
w0=$(written_sectors $DEV)
dd if=/tmp/pattern of=/dev/$DEV bs=1M oflag=direct conv=fsync 2>/tmp/dd.err &
ddpid=$!
wait_writing $DEV "$w0"
netem loss 100%
sleep "${BLIP:-8}"
netem_clear
wait $ddpid
ddrc=$?
got=$(dd if=/dev/$DEV bs=1M count=24 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
emit blip dd_rc "$ddrc" ms "$(ms_since $t0)" want "$want" got "$got" state "$(cat /sys/class/iscsi_session/session$SID/state)" \
	errors "$(dmesg | grep -c 'detected conn error')"

# The daemon dies and comes back; the session must not notice.
kill -KILL "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
dd if=/tmp/pattern of=/dev/$DEV bs=1M count=4 oflag=direct conv=fsync 2>/dev/null
io_rc=$?
initiator_start # goiscsid answers once it has taken the session over
run_capture list $ADM -m session
emit restart io_rc "$io_rc" sessions "$(session_count)" list_rc "$CAP_RC" list_b64 "$(b64 $CAP_OUT)"
# Stock iscsid logs every session in again when it starts and refuses a logout
# (exit 32) until then: try for up to 20 s and count the attempts.
t0=$(now_us)
attempts=0
while :; do
	attempts=$((attempts + 1))
	run_capture logout $ADM -m node -T $IQN -p $P --logout
	[ "$CAP_RC" = 0 ] || [ $attempts -ge 20 ] && break
	sleep 1
done
gone() { [ "$(session_count)" = 0 ]; }
wait_until 10 gone
emit after_restart_logout rc "$CAP_RC" attempts "$attempts" ms "$(ms_since $t0)" sessions "$(session_count)" stderr_b64 "$(b64 $CAP_ERR)"
daemon_stop
