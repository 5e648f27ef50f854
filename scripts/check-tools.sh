#!/usr/bin/env bash
# pretest: the Debian tools the tests use. Installs them when running as root with apt-get,
# otherwise prints the one line that installs them, and fails.
set -u
declare -A pkg_of=([dnsmasq]=dnsmasq [prometheus]=prometheus [promtool]=prometheus [ip]=iproute2 [iptables]=iptables [openssl]=openssl [faketime]=faketime)
missing=()
for tool in dnsmasq prometheus promtool ip iptables openssl faketime; do
  command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$tool" >/dev/null 2>&1 || missing+=("${pkg_of[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "pretest: installing missing Debian packages: $pkgs"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null || {
    echo "pretest: apt-get install failed; run: apt-get install -y $pkgs" >&2; exit 1; }
  exit 0
fi
echo "pretest: the tests need Debian packages that are missing. Install them with:" >&2
echo "  sudo apt-get install -y $pkgs" >&2
exit 1
