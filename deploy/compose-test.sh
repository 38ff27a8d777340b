#!/usr/bin/env bash
# End-to-end test of deploy/: two teams of three nodes in containers, peered
# with real certificates, survive the loss of a leader while federating.
#
#   bash deploy/compose-test.sh
#
# Brings everything up with deploy/setup.sh (under its own compose project,
# image name, temporary directory and free ports, so it does not touch a
# deployment made with setup.sh), then:
#   1. waits for a leader in each team and for each team to follow the other;
#   2. creates at cert-a an incident that does not touch cert-b's
#      constituency, then deploy/incident.yaml, which does (TLP:GREEN,
#      RESTRICTION_PARTNER);
#   3. checks cert-b holds the second as cert-a's policy shows it: provenance
#      origin cert-a, the attacker's address as it is, the victim's
#      generalised to its /24, the reporter's contact stripped; and does not
#      hold the first (need-to-know);
#   4. moves cert-a's leadership to the node cert-b follows, kills that
#      container (docker kill), creates another incident at a surviving node
#      of cert-a and checks it reaches cert-b (new leader, new endpoint);
#   5. restarts the killed node and checks it catches up;
#   6. runs the irxctl and grpcurl lines of the README's section "Deployment
#      with containers" and of docs/operations.md's "Containers", as written but for a few substitutions (see step 6
#      below), against this deployment, and fails if one exits non-zero;
# and always (also on failure, timeout or Ctrl-C) removes the containers,
# networks, volumes, image and files it made. Fails after IRX_TEST_LIMIT
# seconds (default 300) for steps 1-6, plus at most 90 s to tear down.
# Exits non-zero on any failure, after printing the nodes' last log lines.
set -euo pipefail

DEPLOY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$DEPLOY/.." && pwd)
say() { printf '[compose-test %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
compose() { docker-compose -f "$DEPLOY/compose.yaml" "$@"; }

# --- the orchestrator: isolate, run the steps under a time limit, clean up ---
if [ "${1:-}" != "--steps" ]; then
  LIMIT=${IRX_TEST_LIMIT:-300}
  started=$SECONDS
  for tool in go docker docker-compose timeout; do
    command -v "$tool" >/dev/null || { say "FAIL: $tool is not installed"; exit 1; }
  done
  export COMPOSE_PROJECT_NAME=irxtest$$
  export IRX_IMAGE=irxtest$$/irxd:test
  IRX_RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/irx-compose-test.XXXXXX")
  export IRX_RUN_DIR
  # Empty: Docker picks free host ports; setup.sh writes them into the
  # irxctl contexts.
  export IRX_A1_PORT='' IRX_A2_PORT='' IRX_A3_PORT='' IRX_B1_PORT='' IRX_B2_PORT='' IRX_B3_PORT=''
  rc=1
  cleanup() {
    trap - EXIT INT TERM
    if [ "$rc" -ne 0 ]; then
      say "last log lines of every node:"
      timeout 30 docker-compose -f "$DEPLOY/compose.yaml" logs --no-color --tail 25 2>&1 || true
    fi
    say "tearing down project $COMPOSE_PROJECT_NAME (containers, networks, volumes, image, $IRX_RUN_DIR)"
    timeout 60 docker-compose -f "$DEPLOY/compose.yaml" down -v --remove-orphans --timeout 5 >/dev/null 2>&1 ||
      say "warning: docker-compose down failed; removing what is left by label"
    local label=com.docker.compose.project=$COMPOSE_PROJECT_NAME left
    left=$(docker ps -aq --filter "label=$label")
    [ -z "$left" ] || timeout 30 docker rm -f $left >/dev/null 2>&1 || true
    left=$(docker network ls -q --filter "label=$label")
    [ -z "$left" ] || timeout 30 docker network rm $left >/dev/null 2>&1 || true
    left=$(docker volume ls -q --filter "label=$label")
    [ -z "$left" ] || timeout 30 docker volume rm -f $left >/dev/null 2>&1 || true
    timeout 30 docker image rm -f "$IRX_IMAGE" >/dev/null 2>&1 || true
    rm -rf "$IRX_RUN_DIR"
    if [ -n "$(docker ps -aq --filter "label=$label")$(docker network ls -q --filter "label=$label")$(docker volume ls -q --filter "label=$label")" ]; then
      say "FAIL: could not remove everything of project $COMPOSE_PROJECT_NAME"
      rc=1
    fi
    if [ "$rc" -eq 0 ]; then
      say "PASS in $((SECONDS - started))s"
    else
      say "FAIL (exit $rc) after $((SECONDS - started))s"
    fi
    exit "$rc"
  }
  trap cleanup EXIT
  say "project $COMPOSE_PROJECT_NAME, image $IRX_IMAGE, files in $IRX_RUN_DIR, limit ${LIMIT}s"
  # In the background, so that Ctrl-C or a TERM reaches this shell's traps
  # at once (bash runs traps only between commands, and wait is one).
  timeout --kill-after=10 "$LIMIT" bash "${BASH_SOURCE[0]}" --steps &
  steps=$!
  stop_steps() { kill -TERM "$steps" 2>/dev/null || true; wait "$steps" 2>/dev/null || true; }
  trap 'say "interrupted"; rc=130; stop_steps; exit 130' INT
  trap 'say "terminated"; rc=143; stop_steps; exit 143' TERM
  set +e
  wait "$steps"
  rc=$?
  set -e
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    say "FAIL: the steps did not finish within ${LIMIT}s"
  fi
  exit "$rc"
fi

# --- the steps ------------------------------------------------------------------
export IRXCTL_CONFIG=$IRX_RUN_DIR/irxctl.yaml
IRXCTL=$IRX_RUN_DIR/bin/irxctl
irxctl() { "$IRXCTL" "$@"; }
fail() { say "FAIL: $*"; exit 1; }

# within SECONDS WHAT COMMAND...: retries COMMAND every second until it
# succeeds, or fails the test after SECONDS.
within() {
  local limit=$1 what=$2 deadline=$((SECONDS + $1))
  shift 2
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what: not within ${limit}s"
    sleep 1
  done
}

# leader_at NODE: the leader's node id as NODE reports it (nothing during
# an election).
leader_at() {
  irxctl --context "$1" --timeout 3s cluster status -o json 2>/dev/null |
    sed -n 's/^  "leader_id": *"\([^"]*\)".*/\1/p'
}
has_leader() { [ -n "$(leader_at "$1")" ]; }
follows() { # TEAM PEER: TEAM's leader is connected to PEER's feed
  irxctl --context "$1" --timeout 3s peer get "$2" -o json 2>/dev/null | grep -q '"connected": true'
}
holds() { # CONTEXT ID: CONTEXT's node has incident ID (written to $HELD)
  HELD=$(irxctl --context "$1" --timeout 5s incident get "$2" -o json 2>/dev/null)
}
# check_view ID: cert-b's copy of ID (in $HELD) is the view cert-a's policy for
# cert-b gives of deploy/incident.yaml.
check_view() {
  local id=$1 copy=$HELD
  grep -q '"origin_team": "cert-a"' <<<"$copy" || fail "$id at cert-b: provenance origin is not cert-a:"$'\n'"$copy"
  grep -q '"received_from": "cert-a"' <<<"$copy" || fail "$id at cert-b: not received from cert-a"
  grep -q '"198.51.100.7"' <<<"$copy" || fail "$id at cert-b: the attacker's address (intruder: forward) is missing"
  grep -q '"c2.bad.example"' <<<"$copy" || fail "$id at cert-b: the indicator (intruder: forward) is missing"
  grep -q '"192.0.2.0/24"' <<<"$copy" || fail "$id at cert-b: the victim's address is not generalised to 192.0.2.0/24"
  if grep -q '192.0.2.17' <<<"$copy"; then fail "$id at cert-b: holds the victim's address 192.0.2.17 (private site: generalise)"; fi
  if grep -q '"contacts"' <<<"$copy"; then fail "$id at cert-b: holds contacts (contact: strip)"; fi
  if grep -q 'soc@cert-a.example\|Alex Doe' <<<"$copy"; then fail "$id at cert-b: holds the reporter's name or e-mail"; fi
  say "$id at cert-b: origin cert-a, attacker 198.51.100.7 and indicator kept, victim 192.0.2.17 -> 192.0.2.0/24, contacts stripped"
}

# create CONTEXT REQUEST_ID: creates the incident on stdin at CONTEXT and
# prints its id. The request id makes a retry after a timeout safe.
create() {
  local out
  out=$(irxctl --context "$1" --timeout 10s incident create -f - --request-id "$2" -o json 2>&1) || {
    say "create at $1: $out" >&2
    return 1
  }
  sed -n 's/^  "id": *"\([^"]*\)".*/\1/p' <<<"$out"
}

say "1. setup.sh: build, certificates, six containers, peering, policies"
bash "$DEPLOY/setup.sh"

within 60 "a leader in cert-a" has_leader a1
within 60 "a leader in cert-b" has_leader b1
say "leaders: cert-a $(leader_at a1), cert-b $(leader_at b1)"
within 60 "cert-b follows cert-a" follows cert-b cert-a
within 60 "cert-a follows cert-b" follows cert-a cert-b
say "cert-b follows cert-a's feed and cert-a follows cert-b's"

say "2. an incident at cert-a that cert-b may not see (need-to-know), then one it may"
private=$(create cert-a compose-test-private <<'EOF'
{"tlp": "TLP_GREEN", "restriction": "RESTRICTION_PARTNER",
 "taxonomy": {"class": "information-gathering", "type": "scanner"},
 "attacking_hosts": [{"addresses": ["203.0.113.9"]}]}
EOF
) || fail "create at cert-a"
[ -n "$private" ] || fail "no id from the first create"
first=$(create cert-a compose-test-1 <"$DEPLOY/incident.yaml") || fail "create at cert-a"
[ -n "$first" ] || fail "no id from the second create"
say "created $private (attacker 203.0.113.9, outside cert-b's constituency) and $first at cert-a"

say "3. cert-b receives $first as cert-a's policy for cert-b shows it"
within 60 "$first at cert-b" holds cert-b "$first"
check_view "$first"
if out=$(irxctl --context cert-b incident get "$private" 2>&1); then
  fail "cert-b holds $private, which touches none of its constituency"
fi
grep -q 'NotFound' <<<"$out" || fail "cert-b, incident get $private: want NotFound, got: $out"
say "$private is not at cert-b (need-to-know), though the feed delivered the later $first"

say "4. make the node cert-b follows cert-a's leader, then kill it"
# cert-b's leader follows cert-a's feed at one of a1:7401..a3:7401. Making
# that node cert-a's leader before the kill means the kill cuts both cert-a's
# Raft leader and cert-b's stream: cert-a must elect a new leader and
# cert-b's puller must move to another endpoint.
endpoint=$(irxctl --context cert-b peer get cert-a -o json | sed -n 's/^    "endpoint": *"\([^"]*\)".*/\1/p')
leader=${endpoint%%:*}
case $leader in a1 | a2 | a3) ;; *) fail "cert-b's status for cert-a names no endpoint of a1, a2, a3: '$endpoint'" ;; esac
transfer() {
  [ "$(leader_at "$leader")" = "$leader" ] && return 0
  irxctl --context "$leader" cluster transfer "$leader" >/dev/null 2>&1 || true
  [ "$(leader_at "$leader")" = "$leader" ]
}
was=$(leader_at "$leader")
within 60 "cert-a's leadership moved to $leader" transfer
say "cert-b follows cert-a at $endpoint; cert-a's leader: $was, now $leader"
container=$(compose ps -q "$leader")
[ -n "$container" ] || fail "no container for $leader"
docker kill "$container" >/dev/null
say "killed $leader (docker kill ${container:0:12})"
survivor=""
for n in a1 a2 a3; do
  if [ "$n" != "$leader" ]; then survivor=$n; break; fi
done
new_leader() { local l; l=$(leader_at "$survivor"); [ -n "$l" ] && [ "$l" != "$leader" ]; }
within 60 "a new leader in cert-a" new_leader
say "cert-a elected $(leader_at "$survivor") (asked $survivor)"
second=""
create_second() { second=$(create "$survivor" compose-test-2 <"$DEPLOY/incident.yaml"); }
within 60 "a create at $survivor" create_second
[ -n "$second" ] || fail "no id from the create at $survivor"
say "created $second at $survivor"
within 90 "$second at cert-b" holds cert-b "$second"
check_view "$second"
now=$(irxctl --context cert-b peer get cert-a -o json | sed -n 's/^    "endpoint": *"\([^"]*\)".*/\1/p')
say "cert-b's puller moved from $endpoint to ${now:-?}"

say "5. restart $leader: it rejoins cert-a and catches up"
compose start "$leader" >/dev/null
# Its operator API may be published at another free port now, also for
# the team's context if it is the team's first node.
addr=$(compose port "$leader" 7400 | tail -n1)
irxctl config set-context "$leader" --addr "$addr" >/dev/null
if [ "$leader" = a1 ]; then irxctl config set-context cert-a --addr "$addr" >/dev/null; fi
within 60 "$leader holds $second" holds "$leader" "$second"
say "$leader is back and holds $second"
irxctl --context "$survivor" cluster status
irxctl --context "$survivor" peer list
irxctl --context cert-b peer list

say "6. the irxctl and grpcurl lines of the README (Deployment with containers) and docs/operations.md (Containers)"
# The README shows them against the deployment setup.sh makes by default.
# They run here in order, from the source tree, with bash, as written but
# for these substitutions:
#   - deploy/run/ (also as $PWD/deploy/run/): this test's run directory
#     $IRX_RUN_DIR/, where its setup.sh wrote the certificates and the irxctl
#     contexts (irxctl.yaml);
#   - 127.0.0.1:1741N and 127.0.0.1:1742N, the ports published for aN and bN
#     by default: the free port aN or bN publishes here (docker-compose port);
#   - cert-a:1, what the README's "incident create" gets on a fresh
#     deployment: the id it gets here (step 2 made cert-a:1 and more).
# IRXCTL_CONFIG first names a file that does not exist, so that the README's
# own export line is what makes the contexts known. The README's "incident
# get" at cert-b is retried for up to 60 s, as a human would: the incident
# just made at cert-a reaches cert-b through the feed; its output is checked
# against the comment the README gives it. Not run: setup.sh and the
# docker-compose lines, which manage the containers rather than use them;
# step 1, steps 4-5 and the cleanup above do what they show (set up, kill
# and start a node, "down -v" and the image) for this test's project.
readme_lines() { # the commands of a section's sh blocks, one per line
  awk -v want="$2" '
    /^## / { section = ($0 == want); next }
    !section { next }
    /^```sh$/ { block = 1; cur = ""; next }
    /^```/ { block = 0; next }
    !block { next }
    { line = cur $0; cur = "" }
    line ~ /\\$/ { cur = substr(line, 1, length(line) - 1); next }
    line !~ /^[[:space:]]*(#|$)/ { print line }
  ' "$1"
}
# The README shows a few; docs/operations.md "Containers" has the tour.
mapfile -t lines < <(readme_lines "$ROOT/README.md" "## Deployment with containers"; readme_lines "$ROOT/docs/operations.md" "## Containers")
ran=0 created="" out=""
export IRXCTL_CONFIG=$IRX_RUN_DIR/not-exported-by-the-readme.yaml
cd "$ROOT"
for line in "${lines[@]}"; do
  case $line in
  "export IRXCTL_CONFIG="* | "go run ./cmd/irxctl "* | "go tool grpcurl "*) ;;
  "docker-compose "* | "bash deploy/setup.sh"*) continue ;;
  *) fail "README: a line step 6 does not know how to run: $line" ;;
  esac
  cmd=${line//'$PWD/deploy/run/'/$IRX_RUN_DIR/}
  cmd=${cmd//deploy\/run\//$IRX_RUN_DIR/}
  for fixed in $(grep -o '127\.0\.0\.1:174[0-9][0-9]' <<<"$line" | sort -u); do
    case ${fixed#127.0.0.1:174} in
    1[123]) node=a${fixed: -1} ;;
    2[123]) node=b${fixed: -1} ;;
    *) fail "README: $fixed is no port deploy/compose.yaml publishes by default: $line" ;;
    esac
    port=$(compose port "$node" 7400 | tail -n1)
    [ -n "$port" ] || fail "no published port for $node"
    cmd=${cmd//"$fixed"/$port}
  done
  if [ -n "$created" ]; then cmd=$(sed "s/cert-a:1\b/$created/g" <<<"$cmd"); fi
  say "README: $line"
  [ "$cmd" = "$line" ] || say "  runs: $cmd"
  ran=$((ran + 1))
  case $line in
  "export "*)
    eval "$cmd"
    continue
    ;;
  *" --context cert-b incident get "*)
    get() { out=$(eval "$cmd" 2>&1) || { say "  not yet: ${out%%$'\n'*}"; return 1; }; }
    within 60 "README: $cmd" get
    ;;
  *)
    out=$(eval "$cmd" 2>&1) || fail "README command exited non-zero: $cmd"$'\n'"$out"
    ;;
  esac
  printf '%s\n' "$out" | sed 's/^/    /'
  case $line in
  *" incident create "*)
    created=$(grep -o 'cert-a:[0-9]\+' <<<"$out" | head -n1)
    [ -n "$created" ] || fail "README: no incident id in the output of $line"
    ;;
  *"# victim 192.0.2.0/24, no contacts"*)
    grep -q '192\.0\.2\.0/24' <<<"$out" || fail "README: $created at cert-b shows no victim 192.0.2.0/24"
    if grep -q '192\.0\.2\.17\|contacts\|soc@cert-a' <<<"$out"; then
      fail "README: $created at cert-b shows the victim's address or contacts"
    fi
    ;;
  esac
done
[ "$ran" -ge 9 ] || fail "README: only $ran irxctl and grpcurl lines in the README's Deployment with containers and operations.md's Containers; the extraction is broken"
[ -n "$created" ] || fail "README: no incident create line ran"
say "the README's $ran irxctl and grpcurl lines ran against this deployment"
say "all checks passed"
