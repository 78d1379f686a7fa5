# Real golden captures: stock iscsiadm's exact stdout, stderr and exit status for
# command lines that need a live iscsid, LIO targets and kernel sessions
# (discovery, login, session -P 0..3, CHAP, errors). One line of the list below
# is one case, split as the shell splits it; each is emitted as a "golden"
# record. TestVMGolden stores them in testdata/golden/stock-vm.txt (-update).
# Env: INITIATOR (stock, the default; goiscsi runs the same lines).
lio_target iqn.2003-01.org.example:gold-a 127.0.0.1:3260 2 8
lio_target iqn.2003-01.org.example:gold-b 127.0.0.1:3260 1 8
lio_chap iqn.2003-01.org.example:gold-b goldusr goldsecret
initiator_start
# Run either as users do, as "iscsiadm" through PATH: messages start with argv[0].
if [ "${INITIATOR:-stock}" = goiscsi ]; then
	mkdir -p /tmp/gbin && ln -sf "$GOISCSIADM" /tmp/gbin/iscsiadm
	PATH=/tmp/gbin:$PATH
fi
ADM=iscsiadm
n=0
while IFS= read -r line; do
	case $line in '' | '#'*) continue ;; esac
	n=$((n + 1))
	eval "set -- $line"
	run_capture "g$n" $ADM "$@"
	emit golden n "$n" line "$line" rc "$CAP_RC" stdout_b64 "$(b64 $CAP_OUT)" stderr_b64 "$(b64 $CAP_ERR)"
done <<'CASES'
# nothing yet
-m session
-m session -P 3
-m node
-m discoverydb
-m host
# discovery
-m discovery -t sendtargets -p 127.0.0.1
-m discovery -t st -p 127.0.0.1:3260
-m discoverydb
-m discoverydb -t st -p 127.0.0.1:3260
-m discovery -t st -p 127.0.0.1:3261
# node records
-m node
-m node -P 1
-m node -T iqn.2003-01.org.example:gold-a
-m node -T iqn.2003-01.org.example:gold-a -p 127.0.0.1:3260
-m node -T iqn.2003-01.org.example:nosuch -p 127.0.0.1:3260
-m node -T iqn.2003-01.org.example:gold-a -p 127.0.0.1:3260 -o update -n node.startup -v automatic
-m node -T iqn.2003-01.org.example:gold-a -p 127.0.0.1:3260 -o update -n node.nosuch -v 1
-m node -T iqn.2003-01.org.example:gold-a -p 127.0.0.1:3260 -o update -n node.session.nr_sessions -v 1
-m node -T iqn.2003-01.org.example:gold-b -p 127.0.0.1:3260 -o update -n node.session.auth.authmethod -v CHAP
-m node -T iqn.2003-01.org.example:gold-b -p 127.0.0.1:3260 -o update -n node.session.auth.username -v goldusr
-m node -T iqn.2003-01.org.example:gold-b -p 127.0.0.1:3260 -o update -n node.session.auth.password -v wrongsecret
# logins
-m node -T iqn.2003-01.org.example:gold-b -p 127.0.0.1:3260 --login
-m node -T iqn.2003-01.org.example:gold-b -p 127.0.0.1:3260 -o update -n node.session.auth.password -v goldsecret
-m node -T iqn.2003-01.org.example:gold-a -p 127.0.0.1:3260 --login
-m node -T iqn.2003-01.org.example:gold-a -p 127.0.0.1:3260 --login
-m node -T iqn.2003-01.org.example:gold-b -p 127.0.0.1:3260 -l
# sessions
-m session
-m session -P 0
-m session -P 1
-m session -P 2
-m session -P 3
-m host
-m host -P 1
# SID 1 was the failed CHAP login: gone
-m session -r 1
-m session -r 2
-m session -r 2 -P 1
-m session -r 3 -P 3
-m session -r 99
-m session -r 2 --rescan
-m session -r 3 -u
-m session
-m node -T iqn.2003-01.org.example:gold-b -p 127.0.0.1:3260 --login
-m node -T iqn.2003-01.org.example:gold-a -p 127.0.0.1:3260 --logout
-m node -T iqn.2003-01.org.example:gold-b -p 127.0.0.1:3260 --logout
-m session
# startup automatic: -L all and -U all
-m node -L all
-m session
-m node -U all
-m node -U all
-m session -P 1
# host and iface
-m host
-m iface
-m iface -I default
-m iface -I nosuch
# errors
-m nosuchmode
-m session --nosuchoption
-m node -T iqn.2003-01.org.example:gold-a -p 127.0.0.1:3260 -o nosuchop
# clean up
-m node -T iqn.2003-01.org.example:gold-b -p 127.0.0.1:3260 -o delete
-m node
-m discoverydb -t st -p 127.0.0.1:3260 -o delete
-m node
-m discoverydb
# the daemon stops on request; its sessions would stay
-k 0
CASES
emit golden_done cases "$n"
stopped() { ! kill -0 "$DAEMON_PID" 2>/dev/null || grep -q '^State:.*Z' "/proc/$DAEMON_PID/status"; }
wait_until 10 stopped || fail "the daemon did not stop on -k 0"
daemon_stop
