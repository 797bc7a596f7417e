"""How the box boots, trimmed for TCG: the kernel command line, a small initramfs, what systemd
starts (and what it never does), the management network, ssh. box.py bakes these in.

Every second of guest CPU counts under TCG (here: 2 host cores for 4-5 VMs), so
the box does at boot only what a lab node needs before provisioning: the
kernel with the few modules that find the root disk, systemd-networkd for the
management NIC (DHCP; no ifupdown, dhclient or vagrant's network
reconfiguration), sshd with one ed25519 host key, nothing timed (apt, fstrim,
e2scrub), no screen, no swap, no fsck of a fresh clone, journald in memory.
The lab's daemons (docker and containerd, bird, etcd) stay off until
provision.sh starts the ones the VM's role needs.
"""

from __future__ import annotations

KERNEL_ARGS = [
    "root=LABEL=podnetroot",
    "rw",  # no read-only mount then remount: nothing checks a fresh clone's filesystem
    "rootflags=noatime",  # fstab's options, without systemd-remount-fs (masked)
    "fsck.mode=skip",
    "console=ttyS0",  # virsh console and the boot log
    "net.ifnames=0",  # eth0 is the management NIC; provision.sh finds the links by MAC
    "biosdevname=0",
    # Debian's kernel turns AppArmor on, the box has no apparmor_parser, and dockerd then
    # refuses to start any container.
    "apparmor=0",
    "quiet",  # every character on the emulated serial port costs: print little
    "loglevel=3",
    "systemd.show_status=false",
    "mitigations=off",  # a throwaway lab VM on an emulated CPU: no speculation workarounds to pay for
    "nowatchdog",  # TCG stalls a vCPU for long stretches: no lockup detectors
]

# The initramfs holds only what mounts the root disk (virtio) instead of every module: loaded by
# the BIOS and unpacked by the kernel at TCG speed, its size is boot time.
INITRAMFS_MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4"]
INITRAMFS_CONF = "MODULES=list\nRESUME=none\n"

# Never started: timed maintenance in a VM that lives minutes, and waits nothing needs.
MASKED = [
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
    "systemd-networkd-wait-online.service",  # nothing waits for "online": provisioning orders its own steps
    "getty@tty1.service",  # no screen (the Vagrantfile gives the VMs no graphics): the serial console has a getty
    "modprobe@drm.service",  # no graphics
    "systemd-pstore.service",  # no crash records to keep
    # Measured in a VM of the default lab (systemd-analyze blame, 4 VMs booting on 2 cores), each
    # seconds of emulated CPU that a lab node never uses:
    "getty-static.service",  # gettys on tty2-6 (~18 s): no screen
    "modprobe@dm_mod.service",  # device mapper, fuse, loop, configfs: no lab node uses them
    "modprobe@fuse.service",
    "modprobe@loop.service",
    "modprobe@configfs.service",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",  # debugfs and tracefs: nothing in the lab reads them
    "sys-kernel-tracing.mount",
    "dev-hugepages.mount",
    "kmod-static-nodes.service",  # /dev nodes for modules (fuse, loop, tun, …) the lab never loads
    "systemd-network-generator.service",  # network settings from the kernel line: none given
    "systemd-binfmt.service",  # no foreign binaries
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "systemd-random-seed.service",  # virtio-rng feeds the pool
    "systemd-remount-fs.service",  # the kernel mounts / read-write with fstab's options (KERNEL_ARGS)
    "systemd-sysusers.service",  # the box's users and groups were made when it was built
    "systemd-update-utmp.service",  # boot and runlevel records (~9 s): nobody runs `last` in a lab VM
    "systemd-update-utmp-runlevel.service",
]
# Modules udev would load for the emulated machine's devices (or the CPU's features), none of which
# a lab node uses: each modprobe costs emulated CPU at boot.
BLACKLISTED = [
    "floppy", "pcspkr", "kvm", "kvm_amd", "kvm_intel", "ccp", "cfg80211", "rfkill", "psmouse",
    "i2c_piix4", "evdev", "serio_raw", "joydev", "ata_piix", "ata_generic", "uhci_hcd", "ehci_pci",
    "virtio_balloon", "qemu_fw_cfg", "intel_rapl_msr", "intel_rapl_common", "sr_mod", "sg", "parport_pc",
]  # fmt: skip

# Started by provision.sh for the roles that run them (docker starts containerd).
DISABLED = ["docker.service", "docker.socket", "containerd.service", "bird.service", "etcd.service"]
# SysV scripts beside those units: `systemctl enable` would run update-rc.d (perl) for each under TCG.
SYSV_SCRIPTS = ["docker", "containerd", "bird", "etcd"]
ENABLED = ["systemd-networkd.service", "ssh-host-keys.service"]

FILES: dict[str, str] = {
    "etc/hostname": "podnet\n",
    "etc/hosts": "127.0.0.1 localhost\n127.0.1.1 podnet\n",
    "etc/fstab": "LABEL=podnetroot / ext4 noatime,errors=remount-ro 0 0\n",
    "etc/sudoers.d/vagrant": "vagrant ALL=(ALL) NOPASSWD:ALL\n",
    # The management NIC: DHCP from libvirt's dnsmasq (vagrant finds the VM by that lease),
    # client id the MAC (clones share no other identity at first boot).
    "etc/systemd/network/10-mgmt.network": (
        "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n\n"
        "[DHCPv4]\nClientIdentifier=mac\nUseDNS=no\nUseHostname=no\n"
    ),
    # Routes and rules are podnet's, bird's and docker's: networkd removes none it did not make.
    "etc/systemd/networkd.conf.d/podnet.conf": (
        "[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no\n"
    ),
    "etc/systemd/journald.conf.d/podnet.conf": "[Journal]\nStorage=volatile\nRuntimeMaxUse=64M\n",
    "etc/modprobe.d/podnet-lab.conf": "".join(f"blacklist {m}\n" for m in BLACKLISTED),
    # One host key, made at first boot so clones differ: ed25519 takes no time even emulated
    # (ssh-keygen -A also made RSA 3072, seconds of TCG per VM).
    "etc/ssh/sshd_config.d/podnet.conf": "HostKey /etc/ssh/ssh_host_ed25519_key\nUseDNS no\n",
    "etc/systemd/system/ssh-host-keys.service": (
        "[Unit]\nDescription=Make this VM's own SSH host key\nBefore=ssh.service\n"
        "ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\n\n"
        '[Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key\n\n'
        "[Install]\nWantedBy=multi-user.target\n"
    ),
    "etc/initramfs-tools/conf.d/podnet": INITRAMFS_CONF,
    "etc/initramfs-tools/modules": "".join(f"{m}\n" for m in INITRAMFS_MODULES),
    "boot/extlinux/extlinux.conf": (
        "DEFAULT podnet\nTIMEOUT 1\nLABEL podnet\n  LINUX /vmlinuz\n  INITRD /initrd.img\n"
        f"  APPEND {' '.join(KERNEL_ARGS)}\n"
    ),
}
