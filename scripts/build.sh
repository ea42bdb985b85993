#!/usr/bin/env bash
# Single executables for edge boxes without Bun: dist/sluice-linux-x64 and dist/sluice-linux-arm64.
# The migrations travel inside (SQL files embedded, the journal bundled). TARGETS narrows the list.
set -euo pipefail
cd "$(dirname "$0")/.."
for target in ${TARGETS:-linux-x64 linux-arm64}; do
  bun build --compile --minify --target="bun-$target" src/main.ts src/archive/encode-worker.ts drizzle/*.sql \
    --asset-naming="[name].[ext]" --outfile "dist/sluice-$target"
done
ls -l dist/
