"""The local LXC driver (`lxc-*` tools): the embedded default and what e2e tests run on."""

from phoenix.drivers.lxc.driver import LxcDriver

__all__ = ["LxcDriver"]
