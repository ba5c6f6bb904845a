#!/usr/bin/env bash
# Installs Debian's Slurm and munge (slurm-wlm, munge) for the real-Slurm test tier
# (tests/slurm/), when they are missing and we are root; otherwise says why not and exits 0, so
# the tier then skips with its own message. Idempotent: a no-op once they are installed.
#
# Only CI calls this (.ci/run). scripts/test.sh never does: the README's test command must not
# put a cluster on a user's workstation. The daemons are never started as services here: the
# tests start their own private ones (tests/slurm_cluster.py), so package scripts are kept
# from starting system munged/slurmd (policy-rc.d) when nothing already does that.
# (Not `sbatch --version` for the version: without a slurm.conf it retries for 60 s.)
set -euo pipefail

need=()
command -v slurmctld >/dev/null 2>&1 && command -v slurmd >/dev/null 2>&1 \
    && command -v sbatch >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
if [ ${#need[@]} -eq 0 ]; then
    echo "== slurm: already installed ($(slurmd -V 2>/dev/null || echo '?'))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "== slurm: not root, not installing ${need[*]} (the real-Slurm tests will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "== slurm: no apt-get, not installing ${need[*]} (the real-Slurm tests will skip)"
    exit 0
fi

echo "== installing ${need[*]}"
start=$(date +%s)
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    # 101 = "action forbidden": invoke-rc.d / deb-systemd-invoke then start no daemon.
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >/tmp/tmuxtrain-install-slurm.log 2>&1; then
    apt-get update -qq >/dev/null 2>&1 || true
    if ! apt-get install -y -qq --no-install-recommends "${need[@]}" \
        >/tmp/tmuxtrain-install-slurm.log 2>&1; then
        echo "== slurm: apt-get install ${need[*]} failed (the real-Slurm tests will skip):"
        tail -n 5 /tmp/tmuxtrain-install-slurm.log
        exit 0
    fi
fi
echo "== slurm: installed $(slurmd -V) in $(($(date +%s) - start))s"
