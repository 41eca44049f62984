#!/usr/bin/env bash
# Makes sure `promtool` is there for the tests of platform/observability/ (config/tests/
# test_observability_files.py runs `promtool check config`, `check rules` and `test rules`).
#
# promtool ships in Debian's `prometheus` package. As root with apt, this installs that package
# (about 20 MB; only its promtool is used) and makes sure the Prometheus server the package brings
# is not left running: in a container Debian's policy-rc.d already keeps it from starting, on a
# machine with systemd it would start on :9090, so it is stopped and disabled. Without root, it
# downloads the same package with `apt-get download` and copies only promtool into the venv
# ($VENV/bin/promtool, where the tests also look). Elsewhere it says what to install and exits
# non-zero. When promtool is already there it returns at once. `make test` runs it before pytest.
#
# PROMTOOL overrides the path (the tests read the same variable).
set -euo pipefail

venv="${VENV:-.venv}"
if [[ -n "${PROMTOOL:-}" ]]; then
    [[ -x "$PROMTOOL" ]] && exit 0
    echo "ensure_promtool: PROMTOOL=$PROMTOOL is not an executable file." >&2
    exit 1
fi
if command -v promtool >/dev/null 2>&1 || [[ -x "$venv/bin/promtool" ]]; then
    exit 0
fi

how="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure_promtool: the observability tests need promtool (from Prometheus), which is missing." >&2
    echo "ensure_promtool: install Prometheus (e.g. 'brew install prometheus', or promtool from a release" >&2
    echo "ensure_promtool: tarball at https://github.com/prometheus/prometheus/releases) and put promtool" >&2
    echo "ensure_promtool: on PATH, or point PROMTOOL at it." >&2
    exit 1
fi

started=$SECONDS
log="$(mktemp)"
work="$(mktemp -d)"
trap 'rm -rf "$log" "$work"' EXIT
export DEBIAN_FRONTEND=noninteractive
# Wait for the dpkg lock instead of failing when another apt run (ensure_browser.sh) holds it.
apt_opts=(-o DPkg::Lock::Timeout=300 -q)

if [[ "$(id -u)" -eq 0 ]]; then
    echo "ensure_promtool: installing Debian's prometheus package for its promtool..."
    if ! { apt-get "${apt_opts[@]}" update \
            && apt-get "${apt_opts[@]}" install -y --no-install-recommends prometheus; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "ensure_promtool: the install failed; by hand:  $how" >&2
        exit 1
    fi
    # The tests need promtool only: a Prometheus server the package started must not stay up on :9090.
    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
        systemctl disable --now prometheus >/dev/null 2>&1 || true
        echo "ensure_promtool: stopped and disabled the prometheus service the package started."
    elif [[ -x /etc/init.d/prometheus ]] && /etc/init.d/prometheus status >/dev/null 2>&1; then
        /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        echo "ensure_promtool: stopped the prometheus service the package started."
    fi
else
    # No root: the package's file, unpacked here, without installing it or starting anything.
    echo "ensure_promtool: downloading Debian's prometheus package to copy its promtool into $venv/bin..."
    if ! (cd "$work" && apt-get "${apt_opts[@]}" download prometheus) >"$log" 2>&1 \
            || ! dpkg-deb -x "$work"/prometheus_*.deb "$work/root" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        echo "ensure_promtool: the download failed; as root:  $how" >&2
        echo "ensure_promtool: (or put a promtool on PATH, or point PROMTOOL at one)" >&2
        exit 1
    fi
    mkdir -p "$venv/bin"
    install -m 0755 "$work/root/usr/bin/promtool" "$venv/bin/promtool"
fi

tool="$(command -v promtool || echo "$venv/bin/promtool")"
if [[ ! -x "$tool" ]]; then
    echo "ensure_promtool: the prometheus package is in place, but promtool is still missing." >&2
    exit 1
fi
echo "ensure_promtool: promtool ready in $((SECONDS - started)) s: $("$tool" --version 2>&1 | head -n 1)"
