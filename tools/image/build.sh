#!/usr/bin/env bash
# Builds the raftlet image without a Docker engine or an image registry, then smoke-tests it.
# Needs Debian's podman, buildah and mmdebstrap, npm, and `npm ci` done in the repository.
#
#   tools/image/build.sh [--context DIR] [IMAGE]     (default IMAGE: localhost/raftlet:dev)
#
# --context DIR builds from DIR instead of the working tree, e.g. a clean export:
#   git archive HEAD | tar -x -C /tmp/raftlet-src && tools/image/build.sh --context /tmp/raftlet-src
#
# 1. localhost/debian:bookworm: mmdebstrap --variant=minbase, podman import (skipped if present)
# 2. localhost/raftlet-node-base:24: that Debian plus Node 24 from node_modules/node and the host's
#    npm (tools/image/node-base.Containerfile), standing in for node:24-bookworm-slim
# 3. the Dockerfile, with BASE_IMAGE=localhost/raftlet-node-base:24
# 4. checks, with `buildah run` (`podman run` cannot set rlimits on these machines): user,
#    entrypoint; contents (from the host through `buildah mount`: the final stage has no shell):
#    no sources, no shell, no package manager; `raftlet --help` and `raftlet demo-app` as an
#    arbitrary uid (65534); a one-member `raftlet run` as the image user that elects itself, seen
#    through demo-app, stops with exit 0 on SIGTERM and writes nothing outside /var/lib/raftlet.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
context=$repo
if [ "${1:-}" = --context ]; then
  context=$(cd "${2:?--context needs a directory}" && pwd)
  shift 2
fi
image=${1:-localhost/raftlet:dev}
debian_image=localhost/debian:bookworm
base_image=localhost/raftlet-node-base:24
# podman's default OCI isolation fails on these machines ("cgroups in hybrid mode not supported").
build=(podman build --isolation=chroot --network=host)

say() { printf '\n== %s\n' "$*"; }
fail() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

for tool in podman buildah mmdebstrap npm; do
  command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install -y podman buildah mmdebstrap"
done

work=$(mktemp -d)
container=""
declare -a bg_pids=()
cleanup() {
  local pid
  for pid in "${bg_pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  if [ -n "$container" ]; then
    buildah umount "$container" >/dev/null 2>&1 || true
    buildah rm "$container" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if podman image exists "$debian_image"; then
  say "reusing $debian_image"
else
  say "mmdebstrap bookworm (minbase) -> $debian_image"
  # Without manuals, docs (copyright files stay), locales and apt lists, like the slim images.
  mmdebstrap --variant=minbase \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$work/debian.tar"
  podman import "$work/debian.tar" "$debian_image"
  rm -f "$work/debian.tar"
fi

say "Node 24 stand-in base -> $base_image"
node_bin=$(readlink -f "$repo/node_modules/node/bin/node" || true)
[ -x "$node_bin" ] || fail "no Node binary at node_modules/node/bin/node: run npm ci first"
node_version=$("$node_bin" --version)
case "$node_version" in v24.*) ;; *) fail "node_modules/node is $node_version, expected v24";; esac
# npm's own directory, from its executable (`npm root -g` depends on which node runs npm).
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
[ -f "$npm_dir/bin/npm-cli.js" ] || fail "npm not found at $npm_dir"
mkdir "$work/node-base"
install -m 0755 "$node_bin" "$work/node-base/node"
cp -r "$npm_dir" "$work/node-base/npm"
ca_bundle=/etc/ssl/certs/ca-certificates.crt
if [ -f "$ca_bundle" ]; then cp "$ca_bundle" "$work/node-base/ca-certificates.crt"; else : >"$work/node-base/ca-certificates.crt"; fi
"${build[@]}" --build-arg DEBIAN_IMAGE="$debian_image" -t "$base_image" \
  -f "$repo/tools/image/node-base.Containerfile" "$work/node-base"

say "raftlet image -> $image"
registry=$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)
"${build[@]}" --build-arg BASE_IMAGE="$base_image" \
  --build-arg NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
  --build-arg NPM_CONFIG_REGISTRY="$registry" \
  -t "$image" -f "$context/Dockerfile" "$context"

say "image configuration"
config=$(podman image inspect "$image" --format '{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.Cmd}}|{{json .Config.Volumes}}|{{.Size}}')
echo "$config"
IFS='|' read -r user entrypoint cmd volumes size <<<"$config"
[ "$user" = "65532:65532" ] || fail "image user is '$user', expected 65532:65532"
[ "$entrypoint" = '["node","/app/bin/raftlet.js"]' ] || fail "unexpected entrypoint $entrypoint"
[ "$cmd" = '["run"]' ] || fail "unexpected cmd $cmd"
case "$volumes" in *'/var/lib/raftlet'*) ;; *) fail "no VOLUME /var/lib/raftlet ($volumes)";; esac
echo "size: $((size / 1024 / 1024)) MiB"

container=$(buildah from "$image")
in_image() { buildah run --isolation=chroot --user 65534:65534 "$container" -- "$@"; }

say "contents"
mnt=$(buildah mount "$container")
for absent in app/src app/test app/node_modules/typescript usr/local/bin/npm usr/local/lib/node_modules bin/sh usr/bin/apt usr/bin/dpkg; do
  [ ! -e "$mnt/$absent" ] && [ ! -L "$mnt/$absent" ] || fail "the image holds /$absent (sources, tests, TypeScript, npm, a shell or a package manager)"
done
for present in app/dist/cli/main.js app/node_modules/express/package.json usr/local/bin/node usr/bin/env; do
  [ -e "$mnt/$present" ] || fail "/$present is missing from the image"
done
echo "files outside /app: $(cd "$mnt" && find . -path ./app -prune -o \( -type f -o -type l \) -print | wc -l); largest:"
# sed, not head: head exits after its lines, and with pipefail the writer's SIGPIPE (exit 141)
# then fails the script whenever its output outgrows the pipe's buffer.
(cd "$mnt" && du -ah --max-depth=3 . 2>/dev/null | sort -rh | sed -n '1,6p')
buildah umount "$container" >/dev/null
in_image node --version

say "raftlet --help (as uid 65534)"
help=$(in_image node /app/bin/raftlet.js --help)
printf '%s\n' "$help" | sed -n '1,12p'
grep -q 'raftlet run' <<<"$help" || fail "raftlet --help did not print the usage"
in_image raftlet --version

# Background `buildah run`s, stopped like a container runtime stops them: SIGTERM to node itself,
# since `buildah run` does not forward it (it kills its child). node is the leaf under
# buildah run -> buildah-chroot-runtime -> buildah-chroot-exec; Node names its main thread
# MainThread, so it is found by command line, not by name.
start_bg() { # LOG BUILDAH-RUN-ARGS...
  local log=$1; shift
  buildah run --isolation=chroot "$@" >"$log" 2>&1 &
  bg_pid=$!
  bg_pids+=("$bg_pid")
}
descendants() { local p; for p in $(ps -o pid= --ppid "$1"); do echo "$p"; descendants "$p"; done; }
stop_bg() { # PID LOG: SIGTERM to its node process, then the exit status must be 0
  local pid=$1 log=$2 node_pid="" p status
  for p in $(descendants "$pid"); do
    if [ -z "$(ps -o pid= --ppid "$p")" ] && ps -o args= -p "$p" | grep -Eq '^(/usr/local/bin/)?node '; then node_pid=$p; fi
  done
  [ -n "$node_pid" ] || { cat "$log"; fail "no node process under buildah run $pid"; }
  kill -TERM "$node_pid"
  set +e; wait "$pid"; status=$?; set -e
  [ "$status" = 0 ] || { cat "$log"; fail "exit status $status after SIGTERM (expected 0)"; }
}
wait_http() { # URL LOG PID: until it answers 2xx, or the process is gone
  local _
  for _ in $(seq 1 150); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || { cat "$2"; fail "exited before $1 answered"; }
    sleep 0.2
  done
  cat "$2"; fail "$1 never answered"
}

say "raftlet demo-app alone (as uid 65534): /healthz, 503 without a sidecar, SIGTERM -> exit 0"
port=$((20000 + RANDOM % 20000))
start_bg "$work/demo.log" --user 65534:65534 "$container" -- raftlet demo-app --host 127.0.0.1 --port "$port"
demo_pid=$bg_pid
wait_http "http://127.0.0.1:$port/healthz" "$work/demo.log" "$demo_pid"
status=$(curl -s -o "$work/root.json" -w '%{http_code}' "http://127.0.0.1:$port/")
cat "$work/root.json"
[ "$status" = 503 ] && grep -q raftlet_unavailable "$work/root.json" || fail "GET / answered $status"
stop_bg "$demo_pid" "$work/demo.log"
cat "$work/demo.log"

say "raftlet run, one member, as the image user: leader, demo-app sees it, writes only /var/lib/raftlet"
# The image as shipped: default user, data in the VOLUME directory, nothing else writable needed.
mnt=$(buildah mount "$container")
touch "$work/marker"
sleep 1
peer=$((20000 + RANDOM % 20000)); api=$((peer + 1)); metrics=$((peer + 2)); app=$((peer + 3))
start_bg "$work/run.log" \
  --env RAFTLET_NODE_ID=solo --env RAFTLET_PEERS="solo=http://127.0.0.1:$peer" --env RAFTLET_BOOTSTRAP_EXPECT=1 \
  --env RAFTLET_PEER_LISTEN="127.0.0.1:$peer" --env RAFTLET_API_LISTEN="127.0.0.1:$api" \
  --env RAFTLET_METRICS_LISTEN="127.0.0.1:$metrics" --env RAFTLET_CLUSTER_TOKEN=image-smoke-test-token-0123456789 \
  --env RAFTLET_KUBERNETES=0 "$container" -- node /app/bin/raftlet.js run
run_pid=$bg_pid
wait_http "http://127.0.0.1:$metrics/readyz" "$work/run.log" "$run_pid"
start_bg "$work/app.log" --env POD_NAME=solo --env RAFTLET_API_URL="http://127.0.0.1:$api" "$container" -- \
  node /app/bin/raftlet.js demo-app --host 127.0.0.1 --port "$app"
app_pid=$bg_pid
wait_http "http://127.0.0.1:$app/healthz" "$work/app.log" "$app_pid"
view=$(curl -fsS "http://127.0.0.1:$app/")
echo "$view"
grep -q '"role":"leader"' <<<"$view" && grep -q '"leader":"solo"' <<<"$view" || fail "demo-app did not see a leader: $view"
curl -fsS "http://127.0.0.1:$metrics/metrics" | grep -E '^raftlet_is_leader ' || fail "no raftlet_is_leader metric"
stop_bg "$app_pid" "$work/app.log"
stop_bg "$run_pid" "$work/run.log"
tail -n 3 "$work/run.log"
# buildah run itself (re)creates a few mount points and /etc files; anything else is raftlet's.
written=$(cd "$mnt" && find . -xdev -newer "$work/marker" \( -type f -o -type l \) \
  ! -path './var/lib/raftlet/*' ! -path './etc/hosts' ! -path './etc/hostname' ! -path './etc/resolv.conf' \
  ! -path './run/*' ! -path './dev/*' ! -path './proc/*' ! -path './sys/*' | sed -n '1,20p')
[ -z "$written" ] || fail "raftlet wrote outside /var/lib/raftlet: $written"
buildah umount "$container" >/dev/null
# The VOLUME is mounted from outside the root filesystem; its files show from inside (no shell or
# find in the image: node lists them).
echo "in /var/lib/raftlet:"
buildah run --isolation=chroot "$container" -- node -e \
  "for (const f of require('fs').readdirSync('/var/lib/raftlet', { recursive: true }).slice(0, 8)) console.log(f)"

say "OK: $image"
