# systemd facts the modules share with NixOS.
{ lib }:
rec {
  # A unit name as NixOS types `after`, `before`, `wantedBy`, ...
  # (nixos/lib/systemd-lib.nix: unitNameType): zpersist's options that end
  # up in those lists check the same, so a bare "syncthing" is refused at
  # zpersist's option, not as a type error inside systemd.services.
  unitName =
    lib.types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)"
    // {
      description = "systemd unit name with its suffix (like \"sonarr.service\")";
    };

  # Seconds of a systemd time span written as one number and a unit
  # ("90s", "30min", "6h", "1d", "2w"; a bare number is seconds), or null
  # for anything else (several parts, a typo).
  spanSeconds =
    value:
    let
      units = {
        "" = 1; s = 1; sec = 1; second = 1; seconds = 1;
        m = 60; min = 60; minute = 60; minutes = 60;
        h = 3600; hr = 3600; hour = 3600; hours = 3600;
        d = 86400; day = 86400; days = 86400;
        w = 604800; week = 604800; weeks = 604800;
      };
      m = builtins.match "([0-9]+) ?([a-z]*)" (toString value);
    in
    if builtins.isInt value then
      value
    else if m == null || !(units ? ${builtins.elemAt m 1}) then
      null
    else
      lib.toInt (builtins.elemAt m 0) * units.${builtins.elemAt m 1};

  # How often a timer with this timerConfig fires at most, in seconds, or
  # null when zpersist cannot tell: OnCalendar shorthands (hourly, daily,
  # weekly, ...; a month and a year at their longest), a time of day alone
  # ("03:15", "*-*-* 03:15:00": daily), one weekday at a time ("Sun
  # 04:00": weekly), or OnUnitActiveSec /
  # OnUnitInactiveSec spans.
  timerPeriodSeconds =
    timerConfig:
    let
      shorthands = {
        minutely = 60;
        hourly = 3600;
        daily = 86400;
        weekly = 604800;
        monthly = 2678400;
        quarterly = 7948800;
        semiannually = 15897600;
        yearly = 31622400;
        annually = 31622400;
      };
      calendar = timerConfig.OnCalendar or null;
      span = timerConfig.OnUnitActiveSec or timerConfig.OnUnitInactiveSec or null;
      timeOfDay = c: builtins.match "([*]-[*]-[*] )?[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?" c != null;
      # One weekday at a time of day (`Sun 04:00`, `Mon *-*-* 04:00:00`): weekly.
      weekdayAt =
        c:
        builtins.match "(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]* ([*]-[*]-[*] )?[0-9]{1,2}:[0-9]{2}(:[0-9]{2})?" c
        != null;
    in
    if builtins.isString calendar then
      if shorthands ? ${calendar} then
        shorthands.${calendar}
      else if timeOfDay calendar then
        86400
      else if weekdayAt calendar then
        604800
      else
        null
    else if calendar == null && span != null then
      spanSeconds span
    else
      null;
}
