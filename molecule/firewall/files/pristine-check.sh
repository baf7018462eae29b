#!/bin/sh
# Run by converge.yml before the role's first real run: fails when the check step that ran
# before it changed anything prepare.yml left on the host.
set -eu
D=/root/fwtest
[ -e "$D/converged" ] && exit 0
fail() { echo "check mode changed the host: $*" >&2; exit 1; }
if dpkg-query -W -f='${Status}' nftables 2>/dev/null | grep -q 'install ok installed'; then
    fail "nftables was installed"
fi
for path in /etc/caracal/firewall /usr/local/lib/caracal-firewall /usr/local/sbin/caracal-firewall \
            /etc/systemd/system/caracal-firewall.service /etc/systemd/system/caracal-firewall-refresh.timer \
            /run/caracal-firewall; do
    [ ! -e "$path" ] || fail "$path exists"
done
{ iptables -S; iptables -t nat -S; } > "$D/iptables.check"
cmp -s "$D/iptables.check" "$D/iptables.before" || fail "the engine's iptables rules changed"
touch "$D/converged"
