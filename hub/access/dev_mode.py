"""Messages of access control that must be impossible to miss."""

from __future__ import annotations


def dev_mode_banner() -> str:
    line = "!" * 78
    return (
        f"\n{line}\n"
        "!!  HUB_DEV_MODE IS ON: requests WITHOUT an API key act as ADMIN and see all\n"
        "!!  personal data. Use it only on your own machine; never expose this port.\n"
        f"{line}"
    )
