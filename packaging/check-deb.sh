#!/usr/bin/env bash
# Checks the Debian package the way an operator meets it: lintian (no errors), the systemd unit
# (`systemd-analyze verify`, and its security exposure), then install, upgrade, remove and purge with dpkg inside a
# throw-away Debian root made with debootstrap, asserting what each step must leave behind.
# Usage: packaging/check-deb.sh path/to/kopir.deb     (as root; needs debootstrap, lintian, systemd, network to Debian)
set -euo pipefail
deb=$(realpath "$1")
root=$(mktemp -d /var/tmp/kopir-deb-root.XXXXXX)
chmod 755 "$root"  # the root of the throw-away system: the kopir user must be able to enter it
cleanup() {
  # Never delete through a mount: unmount /proc (lazily if busy) and only then remove, on this file system only.
  if mountpoint -q "$root/proc"; then umount "$root/proc" 2>/dev/null || umount -l "$root/proc" || true; fi
  if mountpoint -q "$root/proc"; then echo "check-deb: $root/proc is still mounted; leaving $root" >&2; return; fi
  rm -rf --one-file-system "$root"
}
trap cleanup EXIT
if [ -n "${KEEP_ROOT:-}" ]; then trap - EXIT; fi
fail() { echo "check-deb: FAILED: $*" >&2; exit 1; }
in_root() { chroot "$root" "$@"; }

echo "== lintian"
lintian --fail-on error --suppress-tags initial-upload-closes-no-bugs "$deb" 2>&1 | grep -v 'root privileges' || true
lintian --fail-on error "$deb" >/dev/null 2>&1 || fail "lintian reports errors"

echo "== throw-away root (debootstrap)"
debootstrap --variant=minbase --include=adduser,passwd,procps,systemd bookworm "$root" http://deb.debian.org/debian \
  >"$root.log" 2>&1 || { tail -20 "$root.log"; fail "debootstrap"; }
rm -f "$root.log"
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/kopir.deb"

echo "== install"
in_root dpkg -i /tmp/kopir.deb >/dev/null || fail "dpkg -i"
in_root id kopir >/dev/null || fail "no kopir user"
[ "$(in_root stat -c %a /var/lib/kopir)" = 700 ] || fail "/var/lib/kopir is not 0700"
[ -f "$root/var/lib/kopir/kopir.db" ] || fail "kopir init did not run"
[ "$(in_root stat -c %U /var/lib/kopir/kopir.db)" = kopir ] || fail "the database is not owned by kopir"
[ "$(in_root stat -c %a /var/lib/kopir/pki/root-ca.key)" = 600 ] || fail "keys are not 0600"
[ "$(in_root stat -c %a /var/lib/kopir/first-admin.txt)" = 600 ] || fail "first-admin.txt is not 0600"
grep -q "one-time password" "$root/var/lib/kopir/first-admin.txt" || fail "no one-time password in first-admin.txt"
[ "$(in_root stat -c '%a %U:%G' /etc/kopir/appliance.toml)" = "640 root:kopir" ] || fail "config is not 0640 root:kopir"
in_root runuser -u kopir -- kopir --config /etc/kopir/appliance.toml audit verify >/dev/null || fail "audit verify"
for f in kopir-alerts.yml kopir-alerts.test.yml kopir-dashboard.json; do
  [ -f "$root/usr/share/kopir/monitoring/$f" ] || fail "monitoring file $f not installed"
done

echo "== unit"
systemd-analyze verify --root="$root" kopir.service || fail "systemd-analyze verify"
systemd-analyze security --offline=yes --root="$root" kopir.service 2>/dev/null | tail -1

echo "== upgrade (reinstall over itself: the configure step of an upgrade)"
key_before=$(sha256sum "$root/var/lib/kopir/pki/root-ca.key")
echo "# an operator's edit" >>"$root/etc/kopir/appliance.toml"
in_root dpkg -i /tmp/kopir.deb >/dev/null || fail "upgrade"
[ "$(sha256sum "$root/var/lib/kopir/pki/root-ca.key")" = "$key_before" ] || fail "the upgrade changed a key"
grep -q "an operator's edit" "$root/etc/kopir/appliance.toml" || fail "the upgrade overwrote the conffile"

echo "== remove (data stays)"
in_root dpkg -r kopir >/dev/null || fail "dpkg -r"
[ ! -e "$root/usr/bin/kopir" ] || fail "binary left after remove"
[ -f "$root/var/lib/kopir/kopir.db" ] || fail "remove deleted the data"

echo "== purge (data goes)"
in_root dpkg -P kopir >/dev/null 2>&1 || fail "dpkg -P"
[ ! -e "$root/var/lib/kopir" ] || fail "purge left /var/lib/kopir"
[ ! -e "$root/etc/kopir/appliance.toml" ] || fail "purge left the configuration"
! in_root id kopir >/dev/null 2>&1 || fail "purge left the kopir user"
echo "check-deb: package OK"
