#!/usr/bin/env bash
# Make sure Debian's headless Chromium is installed: the tests open the demo's HTML report
# and the dev page in it. Exits non-zero, naming the package, if it cannot be installed.
set -u
command -v chromium >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq >/dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1
fi
command -v chromium >/dev/null 2>&1 && exit 0
echo "browser: Debian package 'chromium' is not installed and could not be installed (apt-get install chromium)" >&2
exit 1
