"""Attach and detach one LUN with Debian's os-brick, unmodified, as Cinder's
volume and compute services do: os-brick runs `iscsiadm` from PATH itself.

    osbrick.py connect IQN LUN PORTAL      prints the device path
    osbrick.py disconnect IQN LUN PORTAL PATH

The privileged calls run in this process (it is root) instead of through a
privsep daemon, which a test host does not set up. os-brick serialises its
portal logins with oslo.concurrency's external locks; Cinder and Nova set their
directory in their configuration, this script sets one of its own."""
import logging
import os
import sys

from oslo_concurrency import lockutils
from os_brick import privileged
from os_brick.initiator import connector

logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
privileged.default.set_client_mode(False)
os.makedirs("/run/osbrick-locks", exist_ok=True)
lockutils.set_defaults("/run/osbrick-locks")

op, iqn, lun, portal = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = connector.InitiatorConnector.factory("ISCSI", None, use_multipath=False)
# What Cinder's iSCSI targets hand Nova: the portal lists too. Without them
# os-brick's disconnect looks the target up in the SendTargets discovery records
# of the portal and takes the first target found there (another one on a host
# with discovery records for that portal).
props = {"target_portal": portal, "target_iqn": iqn, "target_lun": lun,
         "target_portals": [portal], "target_iqns": [iqn], "target_luns": [lun],
         "target_discovered": False, "volume_id": "goiscsi-test"}
if op == "connect":
    print(c.connect_volume(props)["path"])
else:
    c.disconnect_volume(props, {"path": sys.argv[5], "type": "block"})
