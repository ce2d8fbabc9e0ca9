# octoup from an Octopus runbook: `octoup upgrade|check|plan --json` on this worker or node,
# its report in the task log and as output variables, its exit status as the step's result.
# The API key reaches octoup through OCTOPUS_API_KEY in its environment, never its command line.
$ErrorActionPreference = 'Stop'

$octoup  = $OctopusParameters['Octoup.Executable']
$config  = $OctopusParameters['Octoup.ConfigPath']
$command = $OctopusParameters['Octoup.Command']
$to      = $OctopusParameters['Octoup.TargetVersion']
$apiKey  = $OctopusParameters['Octoup.ApiKey']

# What each exit status of octoup means (crates/octoup-cli/src/exit.rs; a test holds these
# codes equal to it).
$meanings = @{
    0   = 'upgraded, up to date, or the command did what it was asked'
    1   = 'the run failed; the report says what state the system is in and what to do'
    2   = 'bad usage or configuration; nothing was changed'
    3   = 'a preflight check refused, or the server/feed could not be reached; nothing was changed'
    4   = 'paused in a documented safe state; run this step again to continue (octoup upgrade resumes), or octoup rollback'
    5   = 'the upgrade failed and was rolled back; the original version serves'
    6   = 'another octoup run holds the lock; wait for it (octoup status) and run this step again'
    7   = 'declined at the prompt; nothing was changed'
    8   = 'confirmation needed (this step passes --yes: check Octoup.Executable)'
    9   = 'octoup status: an octoup is working on the run now'
    10  = 'octoup status: the run is unfinished and no octoup works on it; run this step again to continue'
    11  = 'octoup status: no run recorded'
    12  = 'octoup check --exit-code: an upgrade is available'
    14  = 'octoup verify: a finding at blocker level remains (a node on another version, a failed integrity check, a Tentacle upgrade that did not take)'
    130 = 'octoup was interrupted; the journal is consistent; run this step again to continue'
}

if ([string]::IsNullOrWhiteSpace($octoup)) { $octoup = 'octoup' }
if ($command -notin @('upgrade', 'check', 'plan')) {
    Fail-Step "Octoup.Command is '$command': choose upgrade, check or plan"
}
if ([string]::IsNullOrWhiteSpace($config)) {
    Fail-Step 'Octoup.ConfigPath is empty: give the path of octoup.toml on this machine'
}

$argv = @($command, '--config', $config, '--json')
if ($command -eq 'upgrade') { $argv += '--yes' }
if (-not [string]::IsNullOrWhiteSpace($to)) {
    if ($command -eq 'check') {
        Fail-Step 'Octoup.TargetVersion applies to upgrade and plan; octoup check shows what the policy picks'
    }
    $argv += @('--to', $to)
}

if (-not [string]::IsNullOrWhiteSpace($apiKey)) { $env:OCTOPUS_API_KEY = $apiKey }
Write-Host "Running: $octoup $($argv -join ' ')"
try {
    # stdout is the one JSON object; progress (stderr) flows into the task log.
    $output = & $octoup @argv
    $code = $LASTEXITCODE
} finally {
    Remove-Item Env:OCTOPUS_API_KEY -ErrorAction SilentlyContinue
}

$json = ($output | Out-String).Trim()
Write-Host $json
$report = $null
try { $report = $json | ConvertFrom-Json } catch { Write-Warning "octoup printed no JSON report" }

if ($null -ne $report) {
    foreach ($name in @('outcome', 'from', 'to', 'target', 'current', 'next_step', 'error')) {
        $value = $report.$name
        if ($null -ne $value) { Set-OctopusVariable -name ("Octoup." + $name) -value ([string]$value) }
    }
}

if ($code -eq 0) {
    if ($null -ne $report -and $report.outcome -eq 'upgraded') {
        Write-Highlight "octoup upgraded Octopus Server from $($report.from) to $($report.to) (outage $($report.outage_seconds) s)"
    } elseif ($null -ne $report -and $report.outcome -eq 'up-to-date') {
        Write-Highlight "Octopus Server is up to date ($($report.from)): nothing to do"
    } elseif ($command -eq 'check' -and $null -ne $report) {
        if ($null -ne $report.target) {
            Write-Highlight "An upgrade is eligible: $($report.current) -> $($report.target)"
        } else {
            Write-Highlight "Octopus Server is up to date ($($report.current))"
        }
    }
    exit 0
}

$meaning = $meanings[[int]$code]
if ($null -eq $meaning) { $meaning = 'an exit status octoup does not document' }
$message = "octoup $command exited $code ($meaning)."
if ($null -ne $report -and $null -ne $report.error) { $message += " $($report.error)" }
if ($null -ne $report -and $null -ne $report.next_step) { $message += " Next step: $($report.next_step)" }
Fail-Step $message
