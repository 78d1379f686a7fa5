# Scenario 1: discovery, login, the LUN's block device appears, 32 MiB written and read
# back identical, `iscsiadm -m session -P 3` lists it, logout removes it.
# Env: INITIATOR (stock or goiscsi), DD_MIB (32).
IQN=iqn.2003-01.org.example:login
lio_target $IQN 127.0.0.1:3260 1 64
initiator_start

run_capture disc $ADM -m discovery -t st -p 127.0.0.1
emit cmd name discovery rc "$CAP_RC" stdout_b64 "$(b64 $CAP_OUT)" stderr_b64 "$(b64 $CAP_ERR)"
[ "$CAP_RC" = 0 ] || fail "discovery exit $CAP_RC: $(cat $CAP_ERR)"

t0=$(now_us)
run_capture login $ADM -m node -T $IQN -p 127.0.0.1:3260 --login
emit cmd name login rc "$CAP_RC" ms "$(ms_since $t0)" stdout_b64 "$(b64 $CAP_OUT)" stderr_b64 "$(b64 $CAP_ERR)"
[ "$CAP_RC" = 0 ] || fail "login exit $CAP_RC: $(cat $CAP_ERR)"
SID=$(session_sid $IQN)
[ -n "$SID" ] || fail "no session in sysfs after login"
have_block() { [ -n "$(lun_block $SID 0)" ]; }
wait_until 30 have_block || fail "no block device for LUN 0 within 30 s: $(session_devices $SID)"
emit login_ready ms "$(ms_since $t0)"
DEV=$(lun_block $SID 0)
emit devices sid "$SID" list "$(iscsi_devices)"
dd_verify "$DEV" "${DD_MIB:-32}" "$(lio_lun_file $IQN 0)"

run_capture p3 $ADM -m session -P 3
emit cmd name session_p3 rc "$CAP_RC" stdout_b64 "$(b64 $CAP_OUT)" stderr_b64 "$(b64 $CAP_ERR)"

run_capture logout $ADM -m node -T $IQN -p 127.0.0.1:3260 --logout
emit cmd name logout rc "$CAP_RC" stdout_b64 "$(b64 $CAP_OUT)" stderr_b64 "$(b64 $CAP_ERR)"
[ "$CAP_RC" = 0 ] || fail "logout exit $CAP_RC: $(cat $CAP_ERR)"
no_session() { [ "$(session_count)" = 0 ] && [ ! -e "/sys/block/$DEV" ]; }
wait_until 10 no_session || fail "session or /dev/$DEV still there 10 s after logout"
emit after_logout sessions "$(session_count)" dev_present "$([ -e /sys/block/$DEV ] && echo yes || echo no)"
daemon_stop
