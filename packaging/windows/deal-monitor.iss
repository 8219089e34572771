; Inno Setup script: a per-user Windows installer for the desktop app (no administrator rights).
;
; Built by `python scripts/build_app.py --installer` after PyInstaller has made
; dist\deal-monitor\ from packaging\deal-monitor.spec (the same spec as on Linux). It passes
; /DAppVersion=<pyproject version> /DDistDir=<dist folder> /DIconFile=<generated .ico>.
; Needs Inno Setup 6.3 or newer (reads this UTF-8 file without a byte order mark).
;
; Installs into %LOCALAPPDATA%\Programs\Deal Monitor, adds a Start-menu shortcut that carries
; the app's AppUserModelID (taskbar and notifications say "Deal Monitor"), optionally a desktop
; shortcut and start at login (the same HKCU Run value the app's Settings switch writes), and
; speaks Russian on a Russian Windows. Uninstalling leaves the user's settings, state database
; and logs in place (see README, "Uninstalling").

#if VER < EncodeVer(6, 3, 0)
  #error Inno Setup 6.3 or newer is needed
#endif
#ifndef AppVersion
  #define AppVersion "0.0.0"
#endif
#ifndef DistDir
  #define DistDir "..\..\dist"
#endif
#ifndef IconFile
  #define IconFile "..\..\build\app\icons\deal-monitor.ico"
#endif
#define AppName "Deal Monitor"
#define AppExe "deal-monitor.exe"
; must equal APP_USER_MODEL_ID in deal_monitor/gui/app.py
#define AppUserModelID "DealMonitor.DealMonitor"
; must equal ENTRY_NAME and RUN_KEY in deal_monitor/autostart.py
#define RunValueName "Deal Monitor"
#define RunKey "Software\Microsoft\Windows\CurrentVersion\Run"

[Setup]
AppId={{6F0B7E4C-3D8A-4E43-9B0C-2E7F5A1D9C61}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher={#AppName}
PrivilegesRequired=lowest
DefaultDirName={autopf}\{#AppName}
DisableProgramGroupPage=yes
DisableDirPage=auto
UninstallDisplayIcon={app}\{#AppExe}
UninstallDisplayName={#AppName}
SetupIconFile={#IconFile}
OutputBaseFilename=deal-monitor-{#AppVersion}-setup
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
CloseApplications=yes
RestartApplications=no
ShowLanguageDialog=auto

[Languages]
Name: "russian"; MessagesFile: "compiler:Languages\Russian.isl"
Name: "english"; MessagesFile: "compiler:Default.isl"

[Messages]
russian.WelcomeLabel2=Будет установлена программа [name/ver].%n%nDeal Monitor переносит сделки Битрикс24 в базу данных производства: каждая сделка, вышедшая из начальной стадии, появляется там через секунду после изменения.%n%nПрава администратора не нужны: программа ставится только для текущего пользователя.
english.WelcomeLabel2=This will install [name/ver] on your computer.%n%nDeal Monitor keeps the production database in step with Bitrix24 deals: every deal that leaves the start stage appears there within a second of a change.%n%nNo administrator rights are needed: it is installed for the current user only.

[CustomMessages]
russian.AppComment=Сделки Битрикс24 в базе данных производства
english.AppComment=Bitrix24 deals in the production database
russian.StartAtLogin=Запускать Deal Monitor при входе в Windows
english.StartAtLogin=Start Deal Monitor when I log in to Windows
russian.OtherTasks=Дополнительно:
english.OtherTasks=Other:

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked
Name: "startatlogin"; Description: "{cm:StartAtLogin}"; GroupDescription: "{cm:OtherTasks}"; Flags: unchecked

[Files]
Source: "{#DistDir}\deal-monitor\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[InstallDelete]
; an upgrade replaces the bundled libraries as a whole (no stale module from an older build)
Type: filesandordirs; Name: "{app}\_internal"

[Icons]
Name: "{autoprograms}\{#AppName}"; Filename: "{app}\{#AppExe}"; Comment: "{cm:AppComment}"; AppUserModelID: "{#AppUserModelID}"
Name: "{autodesktop}\{#AppName}"; Filename: "{app}\{#AppExe}"; Comment: "{cm:AppComment}"; AppUserModelID: "{#AppUserModelID}"; Tasks: desktopicon

[Registry]
Root: HKCU; Subkey: "{#RunKey}"; ValueType: string; ValueName: "{#RunValueName}"; ValueData: """{app}\{#AppExe}"""; Tasks: startatlogin; Flags: uninsdeletevalue

[Run]
Filename: "{app}\{#AppExe}"; Description: "{cm:LaunchProgram,{#AppName}}"; Flags: nowait postinstall skipifsilent

[Code]
// Start at login may also have been switched on in the app's Settings (not by this installer):
// the uninstaller removes that value too, so Windows does not try to start a removed program.
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usPostUninstall then
    RegDeleteValue(HKEY_CURRENT_USER, '{#RunKey}', '{#RunValueName}');
end;
