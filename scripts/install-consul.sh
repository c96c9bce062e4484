#!/usr/bin/env bash
# Installs a Consul agent into ./tools/bin/consul when none is on the PATH (idempotent).
# Consul is not on npm or in Debian 12; Debian 11 (bullseye) ships consul 1.8.7 on the same mirror,
# so the package is downloaded from there with a private apt state folder: the system's apt
# sources, lists and caches are not touched, and nothing is installed system-wide.
# Prints the path of the consul binary on its last line. Exit 0 on success, 1 if it cannot install.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/tools/bin/consul"

if command -v consul >/dev/null 2>&1 && [ "$(command -v consul)" != "$dest" ]; then
  echo "consul already on PATH: $(consul version | head -1)" >&2
  command -v consul
  exit 0
fi
if [ -x "$dest" ] && "$dest" version >/dev/null 2>&1; then
  echo "consul already installed: $("$dest" version | head -1)" >&2
  echo "$dest"
  exit 0
fi
for tool in apt-get dpkg; do
  command -v "$tool" >/dev/null 2>&1 || { echo "install-consul: $tool not found; install Consul (>= 1.8) yourself and put it on the PATH" >&2; exit 1; }
done

# The machine's own Debian mirror (deb822 sources first, then the one-line format).
mirror=""
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
  mirror=$(awk '$1 == "deb" && $2 !~ /^\[/ {print $2; exit}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { echo "install-consul: no Debian mirror in the apt sources; install Consul (>= 1.8) yourself and put it on the PATH" >&2; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
if [ -f "$keyring" ]; then
  echo "deb [signed-by=$keyring] $mirror bullseye main" > "$work/src.list"
else
  echo "deb $mirror bullseye main" > "$work/src.list"
fi
opts=(-o "Dir::Etc::sourcelist=$work/src.list" -o "Dir::Etc::sourceparts=-" -o "Dir::State::Lists=$work/lists"
      -o "Dir::Cache=$work/cache" -o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
echo "install-consul: fetching consul from $mirror (bullseye) ..." >&2
if ! apt-get "${opts[@]}" -qq update >&2; then
  echo "install-consul: apt-get update against $mirror bullseye failed" >&2
  exit 1
fi
if ! (cd "$work" && apt-get "${opts[@]}" -qq download consul >&2); then
  echo "install-consul: could not download the consul package" >&2
  exit 1
fi
dpkg -x "$work"/consul_*.deb "$work/x"
mkdir -p "$root/tools/bin"
install -m 0755 "$work/x/usr/bin/consul" "$dest.tmp"
mv "$dest.tmp" "$dest"
echo "consul installed: $("$dest" version | head -1)" >&2
echo "$dest"
