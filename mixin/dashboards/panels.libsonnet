// Builders for the few Grafana panel kinds the dashboards use, all on the $datasource
// variable. Each takes what varies between panels; the rest is Grafana 12's defaults.
local datasource = { type: 'prometheus', uid: '${datasource}' };

local target(expr, legend, refId='A') = {
  datasource: datasource,
  editorMode: 'code',
  expr: expr,
  refId: refId,
  legendFormat: legend,
  range: true,
  instant: false,
};

local base(id, type, title, description, gridPos) = {
  id: id,
  type: type,
  title: title,
  description: description,
  datasource: datasource,
  gridPos: gridPos,
};

local steps(s) = { mode: 'absolute', steps: s };

// runLink opens the exporter's run page (docs/operator-pages.md) of a run table's row: the
// exporter's address is the exporter_url variable; the run's app and ID come from the row.
local runLink = {
  title: 'Run ${__value.raw} in dify_exporter',
  url: '${exporter_url}/runs?app=${__data.fields.app}&run_id=${__value.raw}',
  targetBlank: true,
};

{
  pos(x, y, w, h):: { x: x, y: y, w: w, h: h },

  row(id, title, y):: {
    id: id,
    type: 'row',
    title: title,
    collapsed: false,
    gridPos: { h: 1, w: 24, x: 0, y: y },
    panels: [],
  },

  // stat shows the last value of each series; thresholds are [color, from] steps, the
  // first from null.
  // more holds further [expr, legend] queries.
  stat(id, title, description, gridPos, expr, legend, unit, thresholds=[['green', null]], mappings=[], graph='area', extra={}, options={}, more=[])::
    base(id, 'stat', title, description, gridPos) {
      fieldConfig: {
        defaults: {
          unit: unit,
          color: { mode: 'thresholds' },
          thresholds: steps([{ color: t[0], value: t[1] } for t in thresholds]),
          mappings: mappings,
        } + extra,
        overrides: [],
      },
      options: {
        reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
        colorMode: 'value',
        graphMode: graph,
        justifyMode: 'auto',
        orientation: 'auto',
        textMode: 'auto',
        wideLayout: true,
        showPercentChange: false,
      } + options,
      targets: [target(expr, legend)] + [
        target(more[i][0], more[i][1], std.char(std.codepoint('B') + i))
        for i in std.range(0, std.length(more) - 1)
      ],
    },

  // upDown maps 0/1 to two texts, red and green.
  upDown(down, up):: [{
    type: 'value',
    options: {
      '0': { text: down, color: 'red', index: 0 },
      '1': { text: up, color: 'green', index: 1 },
    },
  }],

  // timeseries draws one line per series of each [expr, legend] query. With exemplars, the
  // first query also asks for the exemplars of its series (the others would repeat them).
  timeseries(id, title, description, gridPos, queries, unit, stacking='none', extra={}, exemplars=false)::
    base(id, 'timeseries', title, description, gridPos) {
      fieldConfig: {
        defaults: {
          unit: unit,
          custom: {
            drawStyle: 'line',
            lineWidth: 1,
            fillOpacity: 10,
            showPoints: 'never',
            spanNulls: false,
            axisPlacement: 'auto',
            stacking: { mode: stacking, group: 'A' },
          },
          color: { mode: 'palette-classic' },
          thresholds: steps([{ color: 'green', value: null }]),
          min: 0,
        } + extra,
        overrides: [],
      },
      options: {
        legend: { displayMode: 'table', placement: 'bottom', showLegend: true, calcs: ['lastNotNull', 'max'] },
        tooltip: { mode: 'multi', sort: 'desc' },
      },
      targets: [
        target(q[0], q[1], std.char(std.codepoint('A') + i)) + (if exemplars && i == 0 then { exemplar: true } else {})
        for i in std.range(0, std.length(queries) - 1)
        for q in [queries[i]]
      ],
    },

  // runTable lists runs (instant query, one row per run) with the value in a column named
  // valueName, sorted by it, largest first. Each run ID links to the exporter's page of
  // the run (runLink).
  runTable(id, title, description, gridPos, expr, valueName, unit):: base(id, 'table', title, description, gridPos) {
    fieldConfig: {
      defaults: {
        unit: unit,
        custom: { align: 'auto', filterable: true, cellOptions: { type: 'auto' } },
        thresholds: steps([{ color: 'green', value: null }]),
        mappings: [],
      },
      overrides: [{
        // The organize transformation below renames run_id for display; a field is
        // matched by the name it is displayed with.
        matcher: { id: 'byName', options: 'Run ID' },
        properties: [{ id: 'links', value: [runLink] }],
      }],
    },
    options: {
      showHeader: true,
      cellHeight: 'sm',
      footer: { show: false, reducer: ['sum'], fields: '' },
      sortBy: [{ displayName: valueName, desc: true }],
    },
    transformations: [{
      id: 'organize',
      options: {
        excludeByName: { Time: true, __name__: true, job: true, instance: true },
        indexByName: { run_id: 0, app: 1, workflow_id: 2, Value: 3 },
        renameByName: { run_id: 'Run ID', app: 'App', workflow_id: 'Workflow', Value: valueName },
      },
    }],
    targets: [{
      datasource: datasource,
      editorMode: 'code',
      expr: expr,
      refId: 'A',
      format: 'table',
      instant: true,
      range: false,
    }],
  },

  // textVariable is a free-text variable holding value until the user changes it.
  textVariable(name, label, value, description):: {
    name: name,
    label: label,
    description: description,
    type: 'textbox',
    query: value,
    current: { text: value, value: value },
    options: [{ selected: true, text: value, value: value }],
    hide: 0,
    skipUrlSync: false,
  },

  // variable is a multi-select query variable over a label of dify_up.
  variable(name, label, query):: {
    name: name,
    label: label,
    type: 'query',
    datasource: datasource,
    definition: query,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 },
    refresh: 2,
    multi: true,
    includeAll: true,
    allValue: '.+',
    current: { selected: true, text: ['All'], value: ['$__all'] },
    options: [],
    regex: '',
    sort: 1,
    hide: 0,
    skipUrlSync: false,
  },
}
