# octoup from an Octopus runbook (Bash): `octoup upgrade|check|plan --json` on this worker or
# node, its report in the task log and as output variables, its exit status as the step's result.
# The API key reaches octoup through OCTOPUS_API_KEY in its environment, never its command line.

octoup=$(get_octopusvariable "Octoup.Executable")
config=$(get_octopusvariable "Octoup.ConfigPath")
command=$(get_octopusvariable "Octoup.Command")
to=$(get_octopusvariable "Octoup.TargetVersion")
api_key=$(get_octopusvariable "Octoup.ApiKey")

# What each exit status of octoup means (crates/octoup-cli/src/exit.rs; a test holds these
# codes equal to it).
meaning() {
  case "$1" in
    0) echo "upgraded, up to date, or the command did what it was asked" ;;
    1) echo "the run failed; the report says what state the system is in and what to do" ;;
    2) echo "bad usage or configuration; nothing was changed" ;;
    3) echo "a preflight check refused, or the server/feed could not be reached; nothing was changed" ;;
    4) echo "paused in a documented safe state; run this step again to continue (octoup upgrade resumes), or octoup rollback" ;;
    5) echo "the upgrade failed and was rolled back; the original version serves" ;;
    6) echo "another octoup run holds the lock; wait for it (octoup status) and run this step again" ;;
    7) echo "declined at the prompt; nothing was changed" ;;
    8) echo "confirmation needed (this step passes --yes: check Octoup.Executable)" ;;
    9) echo "octoup status: an octoup is working on the run now" ;;
    10) echo "octoup status: the run is unfinished and no octoup works on it; run this step again to continue" ;;
    11) echo "octoup status: no run recorded" ;;
    12) echo "octoup check --exit-code: an upgrade is available" ;;
    14) echo "octoup verify: a finding at blocker level remains (a node on another version, a failed integrity check, a Tentacle upgrade that did not take)" ;;
    130) echo "octoup was interrupted; the journal is consistent; run this step again to continue" ;;
    *) echo "an exit status octoup does not document" ;;
  esac
}

[ -n "$octoup" ] || octoup=octoup
case "$command" in
  upgrade | check | plan) ;;
  *) fail_step "Octoup.Command is '$command': choose upgrade, check or plan" ;;
esac
[ -n "$config" ] || fail_step "Octoup.ConfigPath is empty: give the path of octoup.toml on this machine"

args=("$command" --config "$config" --json)
[ "$command" != upgrade ] || args+=(--yes)
if [ -n "$to" ]; then
  [ "$command" != check ] || fail_step "Octoup.TargetVersion applies to upgrade and plan; octoup check shows what the policy picks"
  args+=(--to "$to")
fi

echo "Running: $octoup ${args[*]}"
# stdout is the one JSON object; progress (stderr) flows into the task log. The key is in
# octoup's environment only, not this shell's.
code=0
if [ -n "$api_key" ]; then
  report=$(OCTOPUS_API_KEY="$api_key" "$octoup" "${args[@]}") || code=$?
else
  report=$("$octoup" "${args[@]}") || code=$?
fi
echo "$report"

# A top-level string field of the report: a key indented by two spaces in the pretty form, or
# a key of the one-line form an error has (`{"error":"...","outcome":"failed"}`).
field() {
  local value
  value=$(printf '%s\n' "$report" | sed -n "s/^  \"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" | head -n 1)
  if [ -z "$value" ] && [ "$(printf '%s\n' "$report" | wc -l)" -le 1 ]; then
    value=$(printf '%s\n' "$report" | sed -n "s/.*[{,]\"$1\":\"\(\([^\"\\\\]\|\\\\.\)*\)\".*/\1/p")
  fi
  printf '%s' "$value"
}

for name in outcome from to target current next_step error; do
  value=$(field "$name")
  [ -z "$value" ] || set_octopusvariable "Octoup.$name" "$value"
done

outcome=$(field outcome)
if [ "$code" -eq 0 ]; then
  if [ "$outcome" = upgraded ]; then
    write_highlight "octoup upgraded Octopus Server from $(field from) to $(field to)"
  elif [ "$outcome" = up-to-date ]; then
    write_highlight "Octopus Server is up to date ($(field from)): nothing to do"
  elif [ "$command" = check ] && [ -n "$(field target)" ]; then
    write_highlight "An upgrade is eligible: $(field current) -> $(field target)"
  fi
  exit 0
fi

message="octoup $command exited $code ($(meaning "$code"))."
[ -z "$(field error)" ] || message="$message $(field error)"
[ -z "$(field next_step)" ] || message="$message Next step: $(field next_step)"
fail_step "$message"
