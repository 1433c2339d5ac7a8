#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, if they are missing. Used by `make test`
# and by CI, so a fresh machine needs nothing but the README's command.
set -euo pipefail

# command that shows it is installed -> Debian package
declare -A NEEDED=(
    [chromium]=chromium  # tests/e2e/test_dashboard.py drives the dashboard in it
    # tests/e2e/test_dashboards_prometheus.py scrapes the services with it (the binary only:
    # the test runs its own server on a free port, never Debian's service)
    [prometheus]=prometheus
)

missing=()
for command in "${!NEEDED[@]}"; do
    command -v "$command" >/dev/null 2>&1 || missing+=("${NEEDED[$command]}")
done
((${#missing[@]})) || exit 0

# As root, or through sudo where it needs no password; otherwise say what to install.
as_root=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        as_root=(sudo -n)
    else
        as_root=(cannot)
    fi
fi
if [[ ${as_root[0]:-} == cannot ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing Debian packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "installing Debian packages: ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
