#!/usr/bin/env bash
# Runs the Azurite Azure Storage emulator on loopback: the table service (Orleans' Azure Table cluster membership) and
# the blob service (consumer checkpoints), with the queue service beside them unused; its data is in a fresh temporary
# folder that is deleted when it stops (Ctrl+C).
#
#   scripts/azurite.sh            # blob 127.0.0.1:10000, queue :10001, table :10002 ("UseDevelopmentStorage=true")
#   scripts/azurite.sh 10100      # blob on 10100, queue on 10101, table on 10102
#
# Azurite is installed on first use with npm into .tools/azurite (the npm package `azurite`, pinned below).
set -euo pipefail
cd "$(dirname "$0")/.."
version=3.37.0
base="${1:-10000}"
bin=.tools/azurite/node_modules/.bin/azurite
if [[ ! -x "$bin" ]]; then
  echo "installing azurite $version into .tools/azurite (npm)..." >&2
  npm install --silent --no-audit --no-fund --prefix .tools/azurite "azurite@$version" >&2
fi
data="$(mktemp -d -t speclog-azurite.XXXXXX)"
trap 'rm -rf "$data"' EXIT
echo "azurite: blob http://127.0.0.1:$base, table http://127.0.0.1:$((base + 2)); data in $data (deleted on exit)" >&2
"$bin" --blobHost 127.0.0.1 --blobPort "$base" --queueHost 127.0.0.1 --queuePort "$((base + 1))" \
  --tableHost 127.0.0.1 --tablePort "$((base + 2))" --location "$data" --skipApiVersionCheck --silent
