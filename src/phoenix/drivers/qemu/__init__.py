"""Local VMs on QEMU: the Debian base image (`baseimage`), cloud-init seeds (`cloudinit`),
QEMU's command line (`machine`), KVM or TCG (`accel`), QMP and the guest agent (`qmp`),
and VMs as supervised QEMU processes (`vms`)."""
