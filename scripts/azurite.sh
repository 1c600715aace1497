#!/usr/bin/env bash
# Runs the Azurite Azure Storage emulator (table service only: what Orleans' Azure Table membership needs) on loopback,
# with its data in a fresh temporary folder that is deleted when it stops (Ctrl+C).
#
#   scripts/azurite.sh            # table endpoint http://127.0.0.1:10002 ("UseDevelopmentStorage=true")
#   scripts/azurite.sh 10102      # another port
#
# Azurite is installed on first use with npm into .tools/azurite (the npm package `azurite`, pinned below).
set -euo pipefail
cd "$(dirname "$0")/.."
version=3.37.0
port="${1:-10002}"
bin=.tools/azurite/node_modules/.bin/azurite-table
if [[ ! -x "$bin" ]]; then
  echo "installing azurite $version into .tools/azurite (npm)..." >&2
  npm install --silent --no-audit --no-fund --prefix .tools/azurite "azurite@$version" >&2
fi
data="$(mktemp -d -t speclog-azurite.XXXXXX)"
trap 'rm -rf "$data"' EXIT
echo "azurite table service on http://127.0.0.1:$port, data in $data (deleted on exit)" >&2
"$bin" --tableHost 127.0.0.1 --tablePort "$port" --location "$data" --skipApiVersionCheck --silent
