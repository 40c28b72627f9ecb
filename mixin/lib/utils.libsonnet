{
  // seconds renders a Prometheus duration ("5m", "1d") as a number of seconds.
  seconds(d)::
    local unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
    std.parseInt(std.substr(d, 0, std.length(d) - 1)) * unit[d[std.length(d) - 1]],

  // duration renders seconds as Prometheus writes a duration: 600 -> "10m", 3600 -> "1h".
  duration(s)::
    if s % 86400 == 0 then '%dd' % (s / 86400)
    else if s % 3600 == 0 then '%dh' % (s / 3600)
    else if s % 60 == 0 then '%dm' % (s / 60)
    else '%ds' % s,

  // selector is a label selector of the exporter's series plus the given matchers.
  selector(config, matchers=[])::
    '{' + std.join(', ', std.filter(function(m) m != '', [config.difyExporterSelector] + matchers)) + '}',

  // percent renders a ratio as a percentage without float noise: 0.99 -> "99%".
  percent(r):: '%g%%' % (r * 100),
}
