#!/bin/sh
# Builds the fake endpoints of the firewall scenario inside the test host: a network
# namespace "fwt" behind a veth pair, holding documentation-range addresses (and the
# metadata, carrier-grade NAT and AWS IPv6 metadata addresses) that only exist here.
# Only 198.51.100.0/24 (TEST-NET-2), 2001:db8:100::/64 and the two blocked addresses are
# routed into the namespace: the test machine itself uses 192.0.2.0/24 and 203.0.113.0/24.
# 198.51.100.100 plays the administrator's workstation.
set -eu
NS=fwt
if ip netns list | grep -qw "$NS"; then
    exit 0
fi
ip netns add "$NS"
ip link add fwt-h type veth peer name fwt-n netns "$NS"
# IPv6 is off in the test host's namespace; turn it on for this one interface only. The
# container's /proc/sys is read-only: make it writable in a private mount namespace only
# (a bind remount, so neither the host's mounts nor the proc superblock change).
unshare -m sh -c 'mount -o remount,bind,rw /proc/sys && echo 0 > /proc/sys/net/ipv6/conf/fwt-h/disable_ipv6'
ip addr add 198.51.100.1/24 dev fwt-h
ip -6 addr add 2001:db8:100::1/64 dev fwt-h nodad
ip link set fwt-h up
for dst in 169.254.169.254/32 100.64.0.10/32; do
    ip route add "$dst" dev fwt-h
done
ip -6 route add fd00:ec2::254/128 dev fwt-h
ip -n "$NS" link set lo up
for addr in 198.51.100.10/24 198.51.100.20/32 198.51.100.53/32 198.51.100.100/32 198.51.100.123/32 169.254.169.254/32 100.64.0.10/32; do
    ip -n "$NS" addr add "$addr" dev fwt-n
done
for addr in 2001:db8:100::10/64 2001:db8:100::20/128 fd00:ec2::254/128; do
    ip -n "$NS" -6 addr add "$addr" dev fwt-n nodad
done
ip -n "$NS" link set fwt-n up
ip -n "$NS" route add default via 198.51.100.1 dev fwt-n
ip -n "$NS" -6 route add default via 2001:db8:100::1 dev fwt-n
