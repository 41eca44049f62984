#!/usr/bin/env bash
# Makes sure the browser of the browser tests (testing/browser.py) is installed: Debian's Chromium.
#
# Playwright cannot download a browser of its own here, so the tests drive Debian's `chromium`
# package at /usr/bin/chromium. A fresh machine (and CI's) does not have it: as root with apt,
# this installs it (about a minute); otherwise it says what to install and exits non-zero.
# It also installs a small Chinese font (fonts-wqy-microhei, 1.6 MB): without one, the Chinese
# text of the pages (微信客服 ...) shows as empty boxes in screenshots.
# When both are there it returns at once. `make test` runs it before pytest.
#
# CHROMIUM_EXECUTABLE overrides the path (testing/browser.py reads the same variable).
set -euo pipefail

chromium="${CHROMIUM_EXECUTABLE:-/usr/bin/chromium}"
font=fonts-wqy-microhei
has_font() { dpkg-query -W -f='${Status}' "$font" 2>/dev/null | grep -q "install ok installed"; }

if [[ "$chromium" != /usr/bin/chromium ]]; then
    [[ -x "$chromium" ]] && exit 0
    echo "ensure_browser: CHROMIUM_EXECUTABLE=$chromium is not an executable file." >&2
    exit 1
fi
packages=()
[[ -x "$chromium" ]] || packages+=(chromium)
if command -v dpkg-query >/dev/null 2>&1 && ! has_font; then
    packages+=("$font")
fi
if [[ ${#packages[@]} -eq 0 ]]; then
    exit 0
fi

how="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${packages[*]}"
if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
    if [[ -x "$chromium" ]]; then  # only the font is missing: screenshots show boxes for Chinese text
        echo "ensure_browser: no Chinese font for the browser; as root:  $how" >&2
        exit 0
    fi
    echo "ensure_browser: the browser tests need Debian's Chromium at /usr/bin/chromium, which is missing." >&2
    echo "ensure_browser: install the Debian packages as root:  $how" >&2
    echo "ensure_browser: (elsewhere, point CHROMIUM_EXECUTABLE at a Chromium or Chrome binary)" >&2
    exit 1
fi

echo "ensure_browser: installing ${packages[*]} from Debian's packages (chromium takes about a minute)..."
started=$SECONDS
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
# Wait for the dpkg lock instead of failing when another apt run holds it.
apt_opts=(-o DPkg::Lock::Timeout=300 -q)
if ! { apt-get "${apt_opts[@]}" update \
        && apt-get "${apt_opts[@]}" install -y --no-install-recommends "${packages[@]}"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    echo "ensure_browser: the install failed; by hand:  $how" >&2
    [[ -x "$chromium" ]] && exit 0  # only the font is missing: the tests still run
    exit 1
fi
if [[ ! -x "$chromium" ]]; then
    echo "ensure_browser: the chromium package installed, but $chromium is still missing." >&2
    exit 1
fi
# Debian's wrapper script prints a harmless shell warning on stderr with --version.
echo "ensure_browser: installed ${packages[*]} in $((SECONDS - started)) s: $("$chromium" --version 2>/dev/null)"
