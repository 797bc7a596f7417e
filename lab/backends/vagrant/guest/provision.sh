#!/bin/bash
# Provision one lab VM from its staged directory (lab/backends/vagrant/provision.py
# writes it; the Vagrantfile uploads it to /tmp/podnet-stage and runs this as root).
# Idempotent: `vagrant provision` runs it again on a running lab.
#
# Every step says what it does ("podnet provision (VM, role, Ns): step: …"): the lab
# harness reads these lines from vagrant's output to show each VM's progress. Under TCG
# every process started costs, so this runs few: no pip (the venv is built on the host),
# no `systemctl enable` (its SysV fallbacks are gone from the box; one daemon-reload).
set -euo pipefail
stage=$(cd "$(dirname "$0")" && pwd)
role=$(cat "$stage/role")
name=$(cat "$stage/hostname")
say() { echo "podnet provision ($name, $role, ${SECONDS}s): $*"; }
install -d /var/log/podnet /etc/podnet

say "step: network"
if [ "$(cat /etc/hostname)" != "$name" ]; then
  echo "$name" > /etc/hostname
  hostname "$name"
  sed -i "s/^127\.0\.1\.1\s.*/127.0.1.1 $name/" /etc/hosts
fi
# Underlay NICs: found by the MAC the Vagrantfile gave them, named as the netns backend names
# them (so one scenario file names the same interface on both backends), addressed now, and
# the same written for networkd (a rebooted VM comes back the same). A link that crosses to
# another libvirt host carries a smaller MTU (its frames ride in UDP between the hosts).
while read -r cidr ifname mac mtu; do
  dev=$(ip -o link | awk -v mac="$mac" '$0 ~ "link/ether " mac " " {sub(":$", "", $2); sub("@.*", "", $2); print $2}')
  [ -n "$dev" ] || { echo "podnet provision: no NIC has MAC $mac (for $cidr)" >&2; exit 1; }
  if [ "$dev" != "$ifname" ]; then
    ip link set "$dev" down
    ip link set "$dev" name "$ifname"
  fi
  ip addr replace "$cidr" dev "$ifname"
  link="[Match]\nMACAddress=$mac\n\n[Link]\nName=$ifname\n"
  if [ -n "$mtu" ]; then
    ip link set "$ifname" mtu "$mtu"
    link="${link}MTUBytes=$mtu\n"
  fi
  ip link set "$ifname" up
  printf "$link" > "/etc/systemd/network/20-$ifname.link"
  network="[Match]\nMACAddress=$mac\n\n[Network]\nAddress=$cidr\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"
  if [ "$ifname" = uplink ] && [ -f "$stage/gateway" ]; then
    network="${network}Gateway=$(cat "$stage/gateway")\n"
  fi
  printf "$network" > "/etc/systemd/network/20-$ifname.network"
  say "underlay $cidr on $ifname"
done < "$stage/links"

# Unit files into /etc/systemd/system; one daemon-reload if any changed. Enabling is a symlink
# (what `systemctl enable` makes; `lab status` lists the enabled units).
reload=0
install_units() {
  local unit
  for unit in "$@"; do
    if ! cmp -s "$stage/$unit.service" "/etc/systemd/system/$unit.service"; then
      install -m 644 "$stage/$unit.service" /etc/systemd/system/
      reload=1
    fi
  done
}
enable() {
  local unit path
  install -d /etc/systemd/system/multi-user.target.wants
  for unit in "$@"; do
    path=/etc/systemd/system/$unit.service
    [ -f "$path" ] || path=/lib/systemd/system/$unit.service
    ln -sf "$path" "/etc/systemd/system/multi-user.target.wants/$unit.service"
  done
}
start() {
  if [ "$reload" = 1 ]; then systemctl daemon-reload; reload=0; fi
  enable "$@"
  systemctl restart "$@"
  say "started $*"
}

# The rest of the VM's underlay, as the netns backend sets it in a namespace (lab/model/underlay.py):
# sysctls (forwarding, ECMP hashed by ports; -e: fib_multipath_hash_seed needs Linux 6.11), then
# addresses and routes (a dual-homed node's /32 node IP on lo and its fallback default over both
# leaves, a leaf's default over its spines, a single-homed node's default: the management network,
# vagrant's ssh, has no router). Kept for a reboot: sysctl.d, and the unit podnet-underlay (enabled,
# not started: this runs it now).
if [ -f "$stage/sysctl.conf" ]; then
  install -m 644 "$stage/sysctl.conf" /etc/sysctl.d/60-podnet.conf
  sysctl -q -e -p /etc/sysctl.d/60-podnet.conf
  say "sysctls: $(tr '\n' ' ' < "$stage/sysctl.conf")"
fi
if [ -f "$stage/underlay.sh" ]; then
  install -m 644 "$stage/underlay.sh" /etc/podnet/underlay.sh
  bash /etc/podnet/underlay.sh
  install -m 644 "$stage/podnet-underlay.service" /etc/systemd/system/
  enable podnet-underlay
  say "underlay: $(grep -c '^ip ' /etc/podnet/underlay.sh) addresses and routes"
fi

install_podnet() {
  say "step: podnet venv"
  local venv
  venv=$(cat "$stage/venv")
  if [ "$(cat /opt/podnet/.installed 2>/dev/null)" != "$venv" ]; then
    if blkid -L podnetvenv >/dev/null 2>&1; then
      # A VM on the lab's own machine: the venv is a read-only disk the Vagrantfile attached
      # (lab/backends/vagrant/venv.py made it): mounted, nothing copied or unpacked.
      if mountpoint -q /opt/podnet; then umount /opt/podnet; fi
      rm -rf /opt/podnet
      mkdir /opt/podnet
      mount -o ro LABEL=podnetvenv /opt/podnet
      grep -q ' /opt/podnet ' /etc/fstab || echo "LABEL=podnetvenv /opt/podnet ext4 ro,nofail 0 0" >> /etc/fstab
      say "mounted $venv at /opt/podnet"
    else
      # Built on the host for this Python, byte-compiled there: unpacking is the whole install.
      rm -rf /opt/podnet.new
      mkdir /opt/podnet.new
      tar -xzf /tmp/podnet-venv.tar.gz -C /opt/podnet.new  # with its .installed (venv.py writes it)
      rm -rf /opt/podnet
      mv /opt/podnet.new /opt/podnet
      say "unpacked $venv at /opt/podnet"
    fi
    [ "$(cat /opt/podnet/.installed)" = "$venv" ] || { echo "podnet provision: /opt/podnet is not $venv" >&2; exit 1; }
  fi
  install -m 644 "$stage/profile.sh" /etc/profile.d/podnet.sh
}

start_etcd() {
  say "step: etcd"
  install -m 644 "$stage/etcd.env" /etc/default/etcd
  start etcd
  for _ in $(seq 240); do
    curl -fsS -m 2 http://127.0.0.1:2379/health >/dev/null 2>&1 && { say "etcd healthy"; return; }
    sleep 0.5
  done
  echo "podnet provision: etcd did not become healthy (journalctl -u etcd)" >&2
  exit 1
}

case $role in
  tor|spine|leaf)
    [ -f "$stage/etcd.env" ] && start_etcd
    say "step: bird"
    install -m 644 "$stage/bird.conf" /etc/bird/bird.conf
    bird -p -c /etc/bird/bird.conf
    start bird
    ;;
  control)
    install_units podnet-operator
    start_etcd
    install_podnet
    say "step: registering the workers"
    store=$(sed -n 's/^export PODNET_STORE=//p' "$stage/profile.sh")
    # In topology order (the operator serves nodes in registration order), in one process.
    /opt/podnet/bin/python "$stage/register.py" "$store" < "$stage/register"
    install -m 644 "$stage/operator.env" /etc/podnet/operator.env
    say "step: podnet-operator"
    start podnet-operator
    ;;
  worker)
    runtime=$(cat "$stage/runtime")  # docker: dockerd, the image and the plugin; cni: the agent only
    install_units podnet-agent
    plugin=""  # the agent serves the libnetwork plugin (agent.toml: docker_plugin_socket), or ...
    if [ -f "$stage/plugin.env" ]; then  # ... podnet-docker does (the node's docker_plugin: process)
      plugin=podnet-docker
      install_units podnet-docker
    elif [ -f /etc/systemd/system/podnet-docker.service ]; then  # provisioned before with podnet-docker
      systemctl disable --now podnet-docker >/dev/null 2>&1 || true
      rm -f /etc/systemd/system/podnet-docker.service
      reload=1
    fi
    if [ "$runtime" = docker ]; then
      enable docker
      systemctl start --no-block docker  # dockerd starts while the venv unpacks
    fi
    install_podnet
    if [ "$runtime" = docker ]; then
      say "step: docker"
      systemctl start docker  # waits until dockerd is up
      if ! docker image inspect podnet/busybox:lab >/dev/null 2>&1; then
        say "step: lab image"
        docker import -c "ENV PATH=/bin" "$stage/image.tar" podnet/busybox:lab >/dev/null
        say "imported podnet/busybox:lab"
      fi
    fi
    install -m 644 "$stage/agent.toml" /etc/podnet/agent.toml
    if [ -n "$plugin" ]; then install -m 644 "$stage/plugin.env" /etc/podnet/plugin.env; fi
    if [ -f "$stage/registration" ]; then
      # The control node registers the workers in topology order, the order the operator
      # serves them in (as on the netns backend). VMs come up in parallel: an agent started
      # before that would register itself and could take another node's place. Asked of
      # etcd directly (a podnet command each time would cost seconds of emulated CPU).
      say "step: waiting for $(cat "$stage/registered_by") to register $name"
      read -r url request < "$stage/registration"
      deadline=$((SECONDS + 600))
      until curl -fsS -m 3 -X POST "$url" -d "$request" 2>/dev/null | grep -q '"count":"1"'; do
        if [ "$SECONDS" -ge "$deadline" ]; then
          say "not registered by $(cat "$stage/registered_by") after 600s: the agent registers itself"
          break
        fi
        sleep 1
      done
    fi
    say "step: podnet-agent${plugin:+ and $plugin}"
    start podnet-agent $plugin
    ;;
  *) echo "podnet provision: unknown role $role" >&2; exit 1 ;;
esac
say "done"
