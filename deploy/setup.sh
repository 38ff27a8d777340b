#!/usr/bin/env bash
# Brings up two federated teams of three irxd nodes in containers
# (deploy/compose.yaml): cert-a (a1, a2, a3) and cert-b (b1, b2, b3).
#
#   bash deploy/setup.sh
#
# 1. builds irxd (static, CGO_ENABLED=0) into the image context and irxctl;
# 2. makes each team's PKI with "irxctl pki": the team CA, a certificate per
#    node (for the compose service name), an operator certificate, and the
#    team's peering bundle (its federation endpoints and CA);
# 3. builds the image and starts the six containers; waits for a leader in
#    each team;
# 4. writes irxctl contexts for every node (IRXCTL_CONFIG=$RUN/irxctl.yaml);
# 5. peers the teams with "irxctl peer import BUNDLE --fingerprint FP" (each
#    follows the other) and applies each team's policy for the other
#    (deploy/policies/).
#
# Safe to run again: existing certificates, peers and policies are kept and
# stopped containers started. Everything generated goes to $IRX_RUN_DIR
# (default deploy/run, ignored by git). The CA keys are there too: in a real
# deployment they stay offline, where certificates are issued.
#
# Environment: IRX_RUN_DIR, IRX_IMAGE, COMPOSE_PROJECT_NAME (default irx,
# from deploy/.env), IRX_A1_PORT ... IRX_B3_PORT (see compose.yaml),
# IRX_WAIT (seconds to wait for each team's leader, default 120).
set -euo pipefail

DEPLOY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$DEPLOY/.." && pwd)
RUN=${IRX_RUN_DIR:-$DEPLOY/run}
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
export IRX_RUN_DIR=$RUN
export IRXCTL_CONFIG=$RUN/irxctl.yaml
WAIT=${IRX_WAIT:-120}

TEAMS=(cert-a cert-b)
declare -A NODES=([cert-a]="a1 a2 a3" [cert-b]="b1 b2 b3")
declare -A PEER_OF=([cert-a]=cert-b [cert-b]=cert-a)

say() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf '[setup %s] FAILED: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

for tool in go docker docker-compose; do
  command -v "$tool" >/dev/null || die "$tool is not installed"
done
timeout 15 docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"

compose() { docker-compose -f "$DEPLOY/compose.yaml" "$@"; }
IRXCTL=$RUN/bin/irxctl
irxctl() { "$IRXCTL" "$@"; }

# --- 1. binaries --------------------------------------------------------------
say "building irxd (static) and irxctl"
mkdir -p "$RUN/image" "$RUN/bin"
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$RUN/image/irxd" ./cmd/irxd)
(cd "$ROOT" && CGO_ENABLED=0 go build -o "$IRXCTL" ./cmd/irxctl)
cp "$DEPLOY/Dockerfile" "$RUN/image/Dockerfile"

# --- 2. certificates ------------------------------------------------------------
# $RUN/pki/<team>/ca          the team CA (ca.crt, ca.key)
# $RUN/pki/<team>/<node>      node.crt, node.key, ca.crt: mounted at /etc/irx/tls
# $RUN/pki/<team>/operator    operator.crt, operator.key, ca.crt: for irxctl
# $RUN/pki/<team>.bundle.yaml the peering bundle the other team imports
# $RUN/pki/<team>.fingerprint the CA fingerprint, "told over the phone"
for team in "${TEAMS[@]}"; do
  dir=$RUN/pki/$team
  if [ ! -f "$dir/ca/ca.crt" ]; then
    say "$team: creating the team CA"
    irxctl pki ca create --team "$team" --out "$dir/ca" >/dev/null
  fi
  endpoints=()
  for n in ${NODES[$team]}; do
    if [ ! -f "$dir/$n/node.crt" ]; then
      say "$team: issuing the node certificate of $n (irx://$team/node/$n)"
      # The service name is what the other nodes and the peer team dial;
      # localhost and 127.0.0.1 let grpcurl check the published port.
      irxctl pki node --ca-dir "$dir/ca" --node "$n" --host "$n" --host localhost --host 127.0.0.1 \
        --out "$dir/$n" >/dev/null
    fi
    endpoints+=(--endpoint "$n:7401")
  done
  if [ ! -f "$dir/operator/operator.crt" ]; then
    say "$team: issuing the operator certificate (irx://$team/operator/ops)"
    irxctl pki operator --ca-dir "$dir/ca" --name ops --out "$dir/operator" >/dev/null
  fi
  irxctl pki bundle --ca-dir "$dir/ca" "${endpoints[@]}" --display-name "$team (docker-compose)" \
    --out "$RUN/pki/$team.bundle.yaml" --force -o json >"$RUN/pki/$team.bundle.json"
  sed -n 's/.*"ca_fingerprint": *"\([^"]*\)".*/\1/p' "$RUN/pki/$team.bundle.json" >"$RUN/pki/$team.fingerprint"
  rm -f "$RUN/pki/$team.bundle.json"
  [ -s "$RUN/pki/$team.fingerprint" ] || die "$team: no CA fingerprint from irxctl pki bundle"
  say "$team: peering bundle $RUN/pki/$team.bundle.yaml, CA fingerprint $(cat "$RUN/pki/$team.fingerprint")"
done

# --- 3. containers ----------------------------------------------------------------
say "building the image ${IRX_IMAGE:-irx/irxd:deploy} (FROM scratch)"
# Every service runs this one image: building it for a1 builds it for all.
compose build -q a1
say "starting a1 a2 a3 b1 b2 b3"
compose up -d --no-build

# --- 4. irxctl contexts -----------------------------------------------------------
# One context per node at its published port, and one per team (its first
# node); the current context is cert-a.
for team in "${TEAMS[@]}"; do
  op=$RUN/pki/$team/operator
  first=""
  for n in ${NODES[$team]}; do
    port=$(compose port "$n" 7400 | tail -n1)
    [ -n "$port" ] || die "$n publishes no operator port (docker-compose port $n 7400)"
    irxctl config set-context "$n" --addr "$port" \
      --ca-file "$op/ca.crt" --cert-file "$op/operator.crt" --key-file "$op/operator.key" >/dev/null
    first=${first:-$port}
  done
  irxctl config set-context "$team" --addr "$first" \
    --ca-file "$op/ca.crt" --cert-file "$op/operator.crt" --key-file "$op/operator.key" >/dev/null
done
irxctl config use-context cert-a >/dev/null
say "irxctl contexts in $IRXCTL_CONFIG: cert-a, cert-b (their first nodes), a1 a2 a3 b1 b2 b3"

# --- wait for a leader in each team -------------------------------------------------
leader_of() { # team -> the leader's node id, as any of its nodes reports it
  local n st id
  for n in ${NODES[$1]}; do
    st=$(irxctl --context "$n" --timeout 3s cluster status -o json 2>/dev/null) || continue
    id=$(printf '%s\n' "$st" | sed -n 's/^  "leader_id": *"\([^"]*\)".*/\1/p')
    if [ -n "$id" ]; then echo "$id"; return 0; fi
  done
  return 1
}
for team in "${TEAMS[@]}"; do
  deadline=$((SECONDS + WAIT))
  until leader=$(leader_of "$team"); do
    if [ "$SECONDS" -ge "$deadline" ]; then
      compose logs --tail 20 ${NODES[$team]} >&2 || true
      die "$team: no leader after ${WAIT}s"
    fi
    sleep 1
  done
  say "$team: leader is $leader"
done

# --- 5. peering and policies ---------------------------------------------------------
for team in "${TEAMS[@]}"; do
  peer=${PEER_OF[$team]}
  if irxctl --context "$team" peer get "$peer" >/dev/null 2>&1; then
    say "$team: already peered with $peer"
  else
    say "$team: importing $peer's bundle (pinning its CA $(cat "$RUN/pki/$peer.fingerprint"))"
    irxctl --context "$team" peer import "$RUN/pki/$peer.bundle.yaml" --fingerprint "$(cat "$RUN/pki/$peer.fingerprint")" >/dev/null
  fi
  policy=$DEPLOY/policies/$team-for-$peer.yaml
  if irxctl --context "$team" policy get "$peer" >/dev/null 2>&1; then
    say "$team: keeps its policy for $peer (to change it: irxctl --context $team policy apply -f $policy)"
  else
    say "$team: applying its policy for $peer ($policy)"
    irxctl --context "$team" policy apply -f "$policy" >/dev/null
  fi
done

cat <<EOF
[setup $(date +%H:%M:%S)] ready: two teams of three nodes, peered both ways.

  export IRXCTL_CONFIG=$IRXCTL_CONFIG
  $IRXCTL --context cert-a cluster status
  $IRXCTL --context cert-a peer list
  $IRXCTL --context cert-b incident list --origin cert-a
  docker-compose -f $DEPLOY/compose.yaml down -v      # stop and delete the data
EOF
