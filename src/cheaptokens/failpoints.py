"""Named crash points for the reliability tests, in the style of FoundationDB's buggify
and TiKV's fail-rs: off unless the environment asks for one.

``CHEAPTOKENS_FAILPOINT=provision.after_create`` makes the process SIGKILL itself the
moment it reaches that point, so a test can check that a real crash there loses nothing.
Reading the variable once keeps :func:`hit` a dictionary-free comparison in production.
"""

from __future__ import annotations

import os
import signal

ARMED = os.environ.get("CHEAPTOKENS_FAILPOINT", "")

#: Every point the code passes, in order of a purchase (tests iterate over these).
PROVISION_POINTS = (
    "provision.before_mark_commit",
    "provision.after_mark_commit",
    "provision.after_create",
    "provision.after_pool_patch",
    "provision.before_record_commit",
    "provision.after_record_commit",
)
REPLACE_POINTS = (
    "replace.after_old_delete",
    "replace.after_create",
)
REFUND_POINTS = (
    "refund.after_key_delete",
    "refund.after_refund_call",
    "refund.before_commit",
)
WEB_POINTS = (
    "checkout.after_order_commit",
    "payment.before_commit",
    "payment.after_commit",
)


def hit(name: str) -> None:
    """Die here, at once and without clean-up, if this point is armed."""
    if ARMED and name == ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
