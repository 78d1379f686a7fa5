# Health: goiscsid judges a sick path. netem loses 2% of the packets on lo
# during a 64 MiB write: the session's retransmission counters rise (and are
# those `ss -ti` shows for the connection), --health names the path and exits
# 4, the metrics endpoint serves them; loss removed, the path turns OK and
# the log says each change once. NOP round trips under 50 ms delay each way;
# two killed connections, two recoveries. Env: INITIATOR=goiscsi.
IQN=iqn.2003-01.org.example:health
P=127.0.0.1:3260
lio_target $IQN $P 1 64
kmod_load tcp_diag # ss -ti reads TCP_INFO through inet_diag
mkdir -p /etc/iscsi
# A short window and settle time, so the scenario need not wait minutes; lo's
# 64 KiB segments make a 64 MiB write about 1000 of them. Under TCG a NOP
# round trip takes up to a few hundred ms while the login's scan runs (236 ms
# on average measured), so the RTT check, which is not what this scenario
# proves, gets a threshold above that.
cat >>/etc/iscsi/iscsid.conf <<CONF
goiscsi.health.interval = 1
goiscsi.health.rtt_ms = 1000
goiscsi.health.window = 15
goiscsi.health.settle = 3
goiscsi.health.min_segments = 100
goiscsi.metrics.listen = 9410
CONF
initiator_start
$ADM -m discovery -t st -p 127.0.0.1 >/dev/null || fail "discovery"
$ADM -m node -T $IQN -p $P --login >/dev/null || fail "login"
SID=$(session_sid $IQN)
has() { [ -n "$(lun_block "$SID" 0)" ]; }
wait_until 20 has || fail "no block device"
DEV=$(lun_block "$SID" 0)
run_capture before $ADM -m session --health
emit before rc "$CAP_RC" out_b64 "$(b64 $CAP_OUT)" err_b64 "$(b64 $CAP_ERR)"

netem loss 2%
t0=$(now_us)
dd if=/dev/urandom of=/dev/$DEV bs=1M count=64 oflag=direct conv=fsync 2>/tmp/dd.err
emit write rc $? ms "$(ms_since $t0)"
# What goiscsid measures now (--health samples afresh), what the kernel says
# of the same socket a moment later, and the metrics after that sample.
run_capture json $ADM -m session -r "$SID" --health --json
jrc=$CAP_RC
ss -tin state established '( dport = :3260 )' >/tmp/ss.out 2>&1
wget -q -O /tmp/metrics http://127.0.0.1:9410/metrics
mrc=$?
emit sick metrics_rc "$mrc" metrics_b64 "$(b64 /tmp/metrics)" json_rc "$jrc" json_b64 "$(b64 $CAP_OUT)" ss_b64 "$(b64 /tmp/ss.out)"
run_capture sick $ADM -m session --health
emit sick_text rc "$CAP_RC" out_b64 "$(b64 $CAP_OUT)" err_b64 "$(b64 $CAP_ERR)"

netem_clear
t0=$(now_us)
healthy() { $ADM -m session --health >/dev/null 2>&1 && grep -q 'path healthy again' /tmp/goiscsid.log; }
wait_until 60 healthy
run_capture after $ADM -m session --health
grep 'path ' /tmp/goiscsid.log >/tmp/pathlog
emit after rc "$CAP_RC" ms "$(ms_since $t0)" out_b64 "$(b64 $CAP_OUT)" \
	unhealthy_logs "$(grep -c 'path unhealthy' /tmp/goiscsid.log)" healthy_logs "$(grep -c 'path healthy again' /tmp/goiscsid.log)" \
	log_b64 "$(b64 /tmp/pathlog)"

# NOP-Out round trips under 50 ms of delay each way: about 100 ms. The ping
# in flight when the delay starts is delayed one way only: wait for the one
# after it.
nop_pings() { $ADM -m session -r "$SID" --health --json | awk '/"nop_pings"/ {gsub(/[^0-9]/, "", $2); print $2; exit}'; }
n0=$(nop_pings)
netem delay 50ms
two_more() { [ "$(nop_pings)" -ge $((n0 + 2)) ] 2>/dev/null; }
wait_until 20 two_more || fail "fewer than 2 NOP round trips in 20 s under netem delay (from $n0 to $(nop_pings))"
run_capture delayed $ADM -m session -r "$SID" --health --json
emit delayed rc "$CAP_RC" json_b64 "$(b64 $CAP_OUT)"
netem_clear

# The connection killed twice (ss -K, as a reset would): two recoveries, each
# with its cause and duration.
recoveries() { $ADM -m session -r "$SID" -s 2>/dev/null | grep -q "Recoveries: $1," &&
	[ "$(cat /sys/class/iscsi_session/session$SID/state)" = LOGGED_IN ]; }
for n in 1 2; do
	ss -K dst 127.0.0.1 dport = :3260 >/dev/null 2>&1
	wait_until 30 recoveries $n || fail "no recovery $n after ss -K: $($ADM -m session -r "$SID" -s | grep -A3 Recoveries)"
done
run_capture killed $ADM -m session -r "$SID" --health --json
emit killed rc "$CAP_RC" json_b64 "$(b64 $CAP_OUT)"

# goiscsid's RSS with the endpoint and without, each a fresh daemon that took
# the session over, after a scrape (when on) and a --health. The session
# adopted has no socket in this goiscsid: its path is still judged. Sets
# RSS_KB.
rss() {
	goiscsid_stop
	goiscsid_start
	[ "$1" = on ] && { wget -q -O /dev/null http://127.0.0.1:9410/metrics || fail "scrape after restart"; }
	run_capture adopted $ADM -m session --health
	[ "$CAP_RC" = 0 ] || fail "--health of the adopted session: exit $CAP_RC: $(cat $CAP_OUT $CAP_ERR)"
	sleep 2
	RSS_KB=$(rss_kb "$GOISCSID_PID")
}
rss on
on=$RSS_KB
sed -i '/^goiscsi.metrics.listen/d' /etc/iscsi/iscsid.conf
rss off
emit rss endpoint_on "$on" endpoint_off "$RSS_KB" adopted_b64 "$(b64 /tmp/cap/adopted.out)"
$ADM -m node -T $IQN -p $P --logout >/dev/null || fail "logout"
goiscsid_stop
