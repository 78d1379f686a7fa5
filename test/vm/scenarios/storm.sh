# Login storm with dead arrays (issue 24): GOOD targets that answer, REFUSED portals
# where nothing listens (connection refused) and SILENT ones on an address whose
# packets vanish (a NOARP dummy netdev: no answer at all). In one boot, stock
# then goiscsi, twice each: `-m node -L all` with only the good records, then with
# all of them. Recorded: when the last good session exists after -L all began
# (what one dead array must not delay), when -L all ends, its exit status and its
# "Could not login" lines. The dead records have login_timeout 5 s and
# initial_login_retry_max 2, so each gives up within ~10 s. More silent portals
# than goiscsid lets the kernel work on at once (32): a silent one must not hold
# such a place while it waits.
# Env: GOOD (32), REFUSED (16), SILENT (40).
GOOD=${GOOD:-32}
REFUSED=${REFUSED:-16}
SILENT=${SILENT:-40}
PFX=iqn.2003-01.org.example:storm

kmod_load dummy
ip link add dummy1 type dummy 2>/dev/null
ip addr add 10.99.0.254/24 dev dummy1 || fail "dummy1 address"
ip link set dummy1 up
i=0
while [ $i -lt "$GOOD" ]; do
	lio_target "$PFX-good$i" "127.0.0.1:$((3300 + i))" 1 8
	i=$((i + 1))
done

# records GOOD_ONLY: the node records, made by hand (-o new) as an admin or a
# consumer would for known portals; the dead ones only when GOOD_ONLY is no.
records() {
	rm -rf /etc/iscsi/nodes /etc/iscsi/send_targets
	_rd_i=0
	while [ $_rd_i -lt "$GOOD" ]; do
		$ADM -m node -T "$PFX-good$_rd_i" -p "127.0.0.1:$((3300 + _rd_i))" -o new >/dev/null || fail "record good$_rd_i"
		_rd_i=$((_rd_i + 1))
	done
	[ "$1" = yes ] && return 0
	_rd_i=0
	while [ $_rd_i -lt "$REFUSED" ]; do
		dead "$PFX-refused$_rd_i" "127.0.0.1:$((3400 + _rd_i))"
		_rd_i=$((_rd_i + 1))
	done
	_rd_i=0
	while [ $_rd_i -lt "$SILENT" ]; do
		dead "$PFX-silent$_rd_i" "10.99.0.$((1 + _rd_i)):3260"
		_rd_i=$((_rd_i + 1))
	done
}
dead() {
	$ADM -m node -T "$1" -p "$2" -o new >/dev/null || fail "record $1"
	$ADM -m node -T "$1" -p "$2" -o update -n node.conn[0].timeo.login_timeout -v 5 || fail "timeout $1"
	$ADM -m node -T "$1" -p "$2" -o update -n node.session.initial_login_retry_max -v 2 || fail "retries $1"
}
good_sessions() { sessions | grep -c "$PFX-good"; }
all_good() { [ "$(good_sessions)" = "$GOOD" ]; }

# storm WHO ROUND GOOD_ONLY
storm() {
	records "$3"
	_sm_t0=$(now_us)
	$ADM -m node -L all >/tmp/storm.out 2>/tmp/storm.err &
	_sm_pid=$!
	wait_until 300 all_good || fail "$1: $(good_sessions) of $GOOD good sessions after 300 s"
	_sm_good=$(ms_since "$_sm_t0")
	wait $_sm_pid
	_sm_rc=$?
	emit storm who "$1" round "$2" good_only "$3" good "$GOOD" dead "$((REFUSED + SILENT))" good_ms "$_sm_good" all_ms "$(ms_since "$_sm_t0")" rc "$_sm_rc" \
		failed "$(grep -c 'Could not login to' /tmp/storm.err)" logged_in "$(grep -c 'successful' /tmp/storm.out)" \
		last_err "$(tail -n 3 /tmp/storm.err | tr '\n' '|')"
	$ADM -m node -U all >/dev/null 2>&1
	none() { [ "$(session_count)" = 0 ]; }
	wait_until 120 none || fail "$1: sessions left after -U all: $(sessions)"
}

iscsid_start
ADM=$STOCK_ISCSIADM
storm stock 1 yes
storm stock 1 no
iscsid_stop
goiscsid_start
ADM=$GOISCSIADM
storm goiscsi 1 yes
storm goiscsi 1 no
goiscsid_stop
