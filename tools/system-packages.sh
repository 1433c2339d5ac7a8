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

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    echo "missing Debian packages: ${missing[*]} (install them: apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
