<#
.SYNOPSIS
  Prepares a Windows node (including Bring-Your-Own-Host machines) for mirrorconf, once, as
  Administrator: the OpenSSH server with key authentication, the registry folder, and containerd
  pointed at it.

.PARAMETER PublicKey
  mirrorconf's SSH public key (one line of the .pub file). mirrorconf authenticates by key only.

.EXAMPLE
  .\prepare-byoh-host.ps1 -PublicKey (Get-Content .\mirrorconf.pub)
#>
param(
    [Parameter(Mandatory = $true)][string]$PublicKey,
    [string]$ContainerdConfig = "C:\Program Files\containerd\config.toml",
    [string]$RegistriesDir = "C:\k\containerd\registries"
)
$ErrorActionPreference = "Stop"

# 1. OpenSSH server, started now and at boot, reachable on port 22.
$capability = Get-WindowsCapability -Online -Name "OpenSSH.Server*" | Select-Object -First 1
if ($capability.State -ne "Installed") {
    Add-WindowsCapability -Online -Name $capability.Name | Out-Null
}
Set-Service -Name sshd -StartupType Automatic
Start-Service -Name sshd
if (-not (Get-NetFirewallRule -Name "OpenSSH-Server-In-TCP" -ErrorAction SilentlyContinue)) {
    New-NetFirewallRule -Name "OpenSSH-Server-In-TCP" -DisplayName "OpenSSH Server (sshd)" `
        -Enabled True -Direction Inbound -Protocol TCP -Action Allow -LocalPort 22 | Out-Null
}

# 2. The key, for an administrator account. Win32-OpenSSH reads administrators' keys only from this
#    file, and only while Administrators and SYSTEM alone can write it.
$keys = "C:\ProgramData\ssh\administrators_authorized_keys"
if (-not (Test-Path $keys) -or -not (Select-String -Path $keys -SimpleMatch $PublicKey -Quiet)) {
    Add-Content -Path $keys -Value $PublicKey
}
icacls.exe $keys /inheritance:r /grant "Administrators:F" /grant "SYSTEM:F" | Out-Null

# 3. The folder mirrorconf writes over SFTP and containerd reads.
New-Item -ItemType Directory -Force -Path $RegistriesDir | Out-Null

# 4. containerd's config_path (containerd 1.6/1.7 layout; see containerd-config.toml for 2.x).
$config = if (Test-Path $ContainerdConfig) { Get-Content -Raw -Path $ContainerdConfig } else { "" }
$escaped = $RegistriesDir.Replace("\", "\\")
if ($config -match '(?m)^\s*config_path\s*=') {
    Write-Host "containerd already has a config_path; check that it is $RegistriesDir"
} else {
    $header = '[plugins."io.containerd.grpc.v1.cri".registry]'
    if ($config.Contains($header)) {
        $config = $config.Replace($header, "$header`r`n  config_path = `"$escaped`"")
    } else {
        $config += "`r`n$header`r`n  config_path = `"$escaped`"`r`n"
    }
    Set-Content -Path $ContainerdConfig -Value $config -NoNewline
    Restart-Service -Name containerd
    Write-Host "containerd now reads registry mirrors from $RegistriesDir"
}

# 5. What mirrorconf needs in its known_hosts file for this host.
Write-Host "Host key to pin in mirrorconf's known_hosts (prefix it with this host's address):"
Get-Content "C:\ProgramData\ssh\ssh_host_ed25519_key.pub"
