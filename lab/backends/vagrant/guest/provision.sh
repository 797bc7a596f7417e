#!/bin/bash
# Provision one lab VM from its staged directory (lab/provision.py writes it;
# the Vagrantfile uploads it to /tmp/podnet-stage and runs this as root).
# Idempotent: `vagrant provision` runs it again on a running lab.
set -euo pipefail
stage=$(cd "$(dirname "$0")" && pwd)
role=$(cat "$stage/role")
say() { echo "podnet provision ($(hostname), $role, ${SECONDS}s): $*"; }
install -d /var/log/podnet /etc/podnet

# The lab harness logs in as root with vagrant's key.
install -d -m 700 /root/.ssh
install -m 600 /home/vagrant/.ssh/authorized_keys /root/.ssh/authorized_keys

# Underlay interfaces get the names the netns backend gives them, so one
# scenario file names the same interface on both backends.
while read -r ip name; do
  dev=$(ip -o -4 addr show | awk -v want="$ip" '{split($4, a, "/")} a[1] == want {print $2}')
  [ -n "$dev" ] || { echo "podnet provision: no interface holds $ip" >&2; exit 1; }
  if [ "$dev" != "$name" ]; then
    ip link set "$dev" down
    ip link set "$dev" name "$name"
    sed -i "s/\b$dev\b/$name/g" /etc/network/interfaces
  fi
  ip link set "$name" up
  say "underlay $ip on $name"
done < "$stage/links"
if [ -f "$stage/gateway" ]; then
  # The management network (vagrant's ssh) has no router: the ToR is the way out.
  gw=$(cat "$stage/gateway")
  ip route replace default via "$gw" dev uplink
  grep -q "gateway $gw" /etc/network/interfaces || sed -i "/iface uplink inet static/a\      gateway $gw" /etc/network/interfaces
fi

install_podnet() {
  local wheel
  wheel=$(cd "$stage/wheelhouse" && ls podnet-*.whl)
  if [ "$(cat /opt/podnet/.installed 2>/dev/null)" != "$wheel" ]; then
    say "installing $wheel (no index: the VM is offline)"
    rm -rf /opt/podnet
    python3 -m venv /opt/podnet
    # --no-compile: byte-compiling every module under TCG emulation takes minutes;
    # Python compiles what it imports on first use.
    /opt/podnet/bin/pip install -q --no-compile --no-index --find-links "$stage/wheelhouse" "$stage/wheelhouse/$wheel"
    echo "$wheel" > /opt/podnet/.installed
  fi
  install -m 644 "$stage/profile.sh" /etc/profile.d/podnet.sh
}

start_etcd() {
  install -m 644 "$stage/etcd.env" /etc/default/etcd
  systemctl enable -q etcd
  systemctl restart etcd
  for _ in $(seq 120); do
    curl -fsS -m 2 http://127.0.0.1:2379/health >/dev/null 2>&1 && { say "etcd healthy"; return; }
    sleep 1
  done
  echo "podnet provision: etcd did not become healthy (journalctl -u etcd)" >&2
  exit 1
}

units() {
  for unit in "$@"; do install -m 644 "$stage/$unit.service" /etc/systemd/system/; done
  systemctl daemon-reload
  systemctl enable -q "$@"
  systemctl restart "$@"
  say "started $*"
}

case $role in
  tor)
    echo net.ipv4.ip_forward=1 > /etc/sysctl.d/60-podnet-tor.conf
    sysctl -q -p /etc/sysctl.d/60-podnet-tor.conf
    [ -f "$stage/etcd.env" ] && start_etcd
    install -m 644 "$stage/bird.conf" /etc/bird/bird.conf
    bird -p -c /etc/bird/bird.conf
    systemctl enable -q bird
    systemctl restart bird
    say "bird started"
    ;;
  control)
    install_podnet
    start_etcd
    store=$(sed -n 's/^export PODNET_STORE=//p' "$stage/profile.sh")
    # In topology order: the operator serves nodes in registration order.
    while read -r name ip; do
      /opt/podnet/bin/podnet node register "$name" --node-ip "$ip" --store "$store" >/dev/null
    done < "$stage/register"
    install -m 644 "$stage/operator.env" /etc/podnet/operator.env
    units podnet-operator
    ;;
  worker)
    install_podnet
    systemctl enable -q docker
    systemctl start docker
    if ! docker image inspect podnet/busybox:lab >/dev/null 2>&1; then
      docker import -c "ENV PATH=/bin" "$stage/image.tar" podnet/busybox:lab >/dev/null
      say "imported podnet/busybox:lab"
    fi
    install -m 644 "$stage/agent.toml" /etc/podnet/agent.toml
    install -m 644 "$stage/plugin.env" /etc/podnet/plugin.env
    if [ -f "$stage/registered_by" ]; then
      # The control node registers the workers in topology order, the order the operator
      # serves them in (as on the netns backend). VMs come up in parallel: an agent started
      # before that would register itself and could take another node's place.
      store=$(sed -n 's/^export PODNET_STORE=//p' "$stage/profile.sh")
      deadline=$((SECONDS + 600))
      until /opt/podnet/bin/podnet node list --store "$store" --json 2>/dev/null | grep -q "\"name\": \"$(hostname)\""; do
        if [ "$SECONDS" -ge "$deadline" ]; then
          say "not registered by $(cat "$stage/registered_by") after 600s: the agent registers itself"
          break
        fi
        sleep 2
      done
    fi
    units podnet-agent podnet-docker
    ;;
  *) echo "podnet provision: unknown role $role" >&2; exit 1 ;;
esac
