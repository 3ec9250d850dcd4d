#!/usr/bin/env bash
# Debian packages for the tests' own servers and browser: PostgreSQL (Optuna's RDB storage,
# started by the tests in a temp folder) and headless Chromium with its driver (the `serve`
# page test). Nothing is started here.
set -euo pipefail
need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        apt-get install -y -qq --no-install-recommends "${need[@]}"
    else
        echo "install-services: missing ${need[*]} (needs root and apt-get); their tests will skip" >&2
    fi
fi
