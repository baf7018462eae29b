#!/usr/bin/env bash
# Builds one systemd test image from Debian's archive (no registry is reachable here):
#     tests/platform/systemd-image.sh <suite> <tag> <recipe-hash>
# e.g. trixie caracal-test/systemd:debian-13. setup.sh calls it when the image is missing or
# its org.caracal.hardened.recipe label differs from the hash of this file (so editing this
# recipe rebuilds the images). About 40 s per image.
set -euo pipefail

suite="$1"
tag="$2"
recipe="$3"
mirror="${CARACAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

work="$(mktemp -d "${TMPDIR:-/tmp}/caracal-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT

debootstrap --variant=minbase --include=systemd,systemd-sysv,python3,dbus \
    "$suite" "$work/root" "$mirror"
# The downloaded packages (about 45 MB) only make the image bigger. The package lists stay, as
# in the measured recipe: a host fresh from this image can resolve packages at once.
rm -f "$work/root/var/cache/apt/archives/"*.deb

tar -C "$work/root" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' \
    -c "LABEL org.caracal.hardened.recipe=$recipe" \
    -c "LABEL org.caracal.hardened.suite=$suite" \
    - "$tag" >/dev/null
