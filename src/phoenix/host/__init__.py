"""The host as the inventory and the CLI see it: `phoenix doctor` for the LXC driver, what
`setup --teardown` removes, and the bridges the inventory asks `phoenix setup` for (host
preparation itself is the LXC driver's: `phoenix.drivers.lxc.hostprep`)."""
