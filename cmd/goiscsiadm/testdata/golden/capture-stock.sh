#!/bin/bash
# capture.sh SEQFILE: run each line of SEQFILE through stock iscsiadm 2.1.8 in a
# private mount and network namespace on an empty /etc/iscsi (no iscsid.conf,
# no iscsid), printing "== iscsiadm ARGS", OUT:/ERR: lines and "RC:N".
D=${STOCK:-/tmp/stockdeb}
exec unshare -m -n --propagation private bash -c '
mount -t tmpfs none /etc && mount -t tmpfs none /var/lib && mkdir -p /etc/iscsi /run/lock/iscsi
export LD_LIBRARY_PATH='$D'/root/usr/lib/x86_64-linux-gnu
cd /
while IFS= read -r line; do
  echo "== iscsiadm $line"
  eval "set -- $line"
  ( exec -a iscsiadm '$D'/iscsiadm "$@" ) >/tmp/cap.o 2>/tmp/cap.e </dev/null
  rc=$?
  sed "s/^/OUT:/" /tmp/cap.o; sed "s/^/ERR:/" /tmp/cap.e; echo "RC:$rc"
done
' < "$1"
