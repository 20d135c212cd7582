#!/usr/bin/env bash
# System packages some tests need (Debian): installed when missing and we are root;
# otherwise the list is printed and the tests that need them skip with the reason.
# Each line: <command to look for> <Debian package(s)>
set -uo pipefail
NEEDS=(
  "chromium chromium"   # the widget tests in real JupyterLab (tests/browser/)
  "/usr/lib/postgresql/*/bin/pg_ctl postgresql"   # tests/test_team_setup.py's own cluster
)
missing=()
for entry in "${NEEDS[@]}"; do
  read -r probe packages <<<"$entry"
  command -v "$probe" >/dev/null 2>&1 || ls $probe >/dev/null 2>&1 || missing+=($packages)
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "warning: could not install ${missing[*]}; the tests that need them will skip"
else
  echo "note: not installing ${missing[*]} (needs root and apt-get); those tests will skip"
fi
exit 0
