// The status page: renders each status document (pushed by /api/events, or polled from
// /api/status where EventSource is missing) into the page and the two uPlot charts.
import {
  UPSTREAM_COLUMNS, formatBytes, formatCache, formatCount, formatDuration, formatOpen, formatPercent,
  formatPerSecond, formatRate, formatRateLimit, formatRateWindow, formatReasons, formatTunnelBytes, outcomeLabel, proxyHint, rateLimited,
} from './format.js';

const $ = (selector, root = document) => root.querySelector(selector);

/** Writes a value's text, and the raw value in data-value (for scripts and tests). */
function show(el, value, text) {
  if (!el) return;
  el.textContent = text;
  el.dataset.value = value === null || value === undefined ? '' : String(value);
}

function field(root, key) {
  return $(`[data-field="${key}"]`, root);
}

function renderTotals(s) {
  const root = $('#totals');
  const t = s.totals;
  for (const key of ['requests', 'failedRequests', 'stale', 'hits', 'cacheRequests']) show(field(root, key), t[key], formatCount(t[key]));
  show(field(root, 'hitRatio'), t.hitRatio, formatPercent(t.hitRatio));
  show(field(root, 'bytesFromCache'), t.bytesFromCache, formatBytes(t.bytesFromCache));
  show(field(root, 'bytesFromUpstream'), t.bytesFromUpstream, formatBytes(t.bytesFromUpstream));

  const cache = $('#cache');
  show(field(cache, 'cacheBytes'), s.cache.bytes, formatBytes(s.cache.bytes));
  show(field(cache, 'cacheObjects'), s.cache.objects, formatCount(s.cache.objects));
  show(field(cache, 'cacheLimit'), s.cache.limitBytes, s.cache.limitBytes === null ? 'no limit' : formatCache(s.cache));
  const meter = $('.meter', cache);
  meter.hidden = s.cache.limitBytes === null;
  if (s.cache.limitBytes) $('span', meter).style.width = `${Math.min(100, (100 * s.cache.bytes) / s.cache.limitBytes)}%`;

  const limits = rateLimited(s);
  const box = $('#ratelimits');
  const first = limits[0];
  show(field(box, 'rateLimit'), first?.rateLimit.remaining, first ? formatCount(first.rateLimit.remaining ?? 0) : '—');
  const list = $('ul', box);
  list.replaceChildren(...(limits.length ? limits : [null]).map((u) => {
    const li = document.createElement('li');
    li.textContent = u ? `${u.name}: ${formatRateLimit(u.rateLimit)}` : 'not reported yet: Docker Hub sends it with each pull';
    return li;
  }));
}

function renderUpstreams(s) {
  const table = $('#upstreams');
  const head = $('thead tr', table);
  if (!head.children.length) {
    head.replaceChildren(...UPSTREAM_COLUMNS.map((c) => {
      const th = document.createElement('th');
      th.textContent = c.label;
      if (c.numeric) th.className = 'num';
      return th;
    }));
  }
  const body = $('tbody', table);
  body.replaceChildren(...s.upstreams.map((u) => {
    const tr = document.createElement('tr');
    tr.dataset.upstream = u.name;
    for (const c of UPSTREAM_COLUMNS) {
      const td = document.createElement('td');
      td.dataset.field = c.key;
      td.dataset.label = c.label;
      if (c.numeric) td.className = 'num';
      if (c.key === 'health') td.className = 'health';
      const raw = c.key === 'lastFailure' ? u.lastFailure?.at : u[c.key];
      show(td, raw, c.text(u, s.time));
      if (c.key === 'health') td.replaceChildren(Object.assign(document.createElement('span'), { textContent: td.textContent }));
      tr.append(td);
    }
    return tr;
  }));
}

/** A tile per CONNECT outcome, made once, before the fixed tiles: total, rate and reasons. */
function outcomeTiles(root, outcomes) {
  const tiles = outcomes.map((key) => {
    const tile = document.createElement('div');
    tile.className = 'tile';
    tile.innerHTML = `<h3></h3><p class="big" data-field="${key}">—</p><p class="sub"><span data-field="${key}PerSecond">—</span> <span data-field="${key}Reasons"></span></p>`;
    $('h3', tile).textContent = outcomeLabel(key);
    return tile;
  });
  $('.tiles', root).prepend(...tiles);
}

function renderProxy(s) {
  const root = $('#proxy');
  root.hidden = !s.proxy;
  if (!s.proxy) return;
  const p = s.proxy;
  if (!field(root, 'intercepted')) outcomeTiles(root, Object.keys(p.connects));
  for (const [key, c] of Object.entries(p.connects)) {
    show(field(root, key), c.total, formatCount(c.total));
    show(field(root, `${key}PerSecond`), c.perSecond, formatPerSecond(c.perSecond));
    show(field(root, `${key}Reasons`), null, c.reasons.length ? `· ${formatReasons(c.reasons)}` : '');
  }
  show(field(root, 'rateSeconds'), p.rateSeconds, formatRateWindow(p.rateSeconds));
  const open = p.open.intercepted + p.open.tunnelled;
  show(field(root, 'open'), open, formatCount(open));
  show(field(root, 'openSplit'), null, formatOpen(p.open));
  const failures = p.handshakeFailures.reduce((n, f) => n + f.count, 0);
  show(field(root, 'handshakeFailures'), failures, formatCount(failures));
  show(field(root, 'handshakeReasons'), null, formatReasons(p.handshakeFailures) || 'none');
  const bytes = p.tunnelBytes.fromClient + p.tunnelBytes.toClient;
  show(field(root, 'tunnelBytes'), bytes, formatBytes(bytes));
  show(field(root, 'tunnelSplit'), null, formatTunnelBytes(p.tunnelBytes));
  const hint = field(root, 'hint');
  const text = proxyHint(p);
  hint.hidden = text === null;
  show(hint, text, text ?? '');
}

function renderImages(s) {
  const list = $('#top-images');
  if (!s.topImages.length) return;
  const most = s.topImages[0].pulls;
  list.replaceChildren(...s.topImages.map((img) => {
    const li = document.createElement('li');
    li.dataset.upstream = img.upstream;
    li.dataset.repository = img.repository;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = `${img.upstream}/${img.repository}`;
    const pulls = document.createElement('span');
    pulls.className = 'pulls';
    show(pulls, img.pulls, `${img.error ? '≤ ' : ''}${formatCount(img.pulls)} ${img.pulls === 1 ? 'pull' : 'pulls'}`);
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.width = `${(100 * img.pulls) / most}%`;
    li.append(name, pulls, bar);
    return li;
  }));
}

// ---- charts ----

const charts = {};

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function makeChart(id, series, formatValue, formatTick) {
  const el = document.getElementById(id);
  const fg = cssVar('--muted');
  const grid = cssVar('--line');
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const opts = {
    width: el.clientWidth,
    height: 200,
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    series: [{}, ...series.map((s) => ({ ...s, width: 2, value: (u, v) => (v === null ? '—' : formatValue(v)) }))],
    axes: [axis, { ...axis, size: 84, values: (u, values) => values.map(formatTick) }],
  };
  const chart = new window.uPlot(opts, [[], ...series.map(() => [])], el);
  new ResizeObserver(() => chart.setSize({ width: el.clientWidth, height: 200 })).observe(el);
  return chart;
}

function renderCharts(s) {
  if (!window.uPlot) return;
  const accent = cssVar('--accent');
  const accent2 = cssVar('--accent-2');
  charts.requests ??= makeChart('chart-requests', [
    { label: 'all', stroke: accent, fill: `${accent}22` },
    { label: 'cache hits', stroke: accent2 },
  ], formatRate, formatRate);
  charts.bytes ??= makeChart('chart-bytes', [
    { label: 'from cache', stroke: accent2, fill: `${accent2}22` },
    { label: 'not from cache', stroke: accent },
  ], (v) => `${formatBytes(Math.round(v))}/s`, (v) => formatBytes(Math.round(v)));
  const { start, intervalSeconds: step, requests, hits, bytesFromCache, bytesOther } = s.series;
  const x = requests.map((_, i) => start + i * step);
  const perSecond = (values) => values.map((v) => v / step);
  charts.requests.setData([x, perSecond(requests), perSecond(hits)]);
  charts.bytes.setData([x, perSecond(bytesFromCache), perSecond(bytesOther)]);
}

// ---- updates ----

function render(s) {
  renderTotals(s);
  renderProxy(s);
  renderUpstreams(s);
  renderImages(s);
  renderCharts(s);
  $('#uptime').textContent = formatDuration((s.time - s.startedAt) / 1000);
  $('#updated').textContent = new Date(s.time).toLocaleTimeString();
  document.body.dataset.time = String(s.time);
}

function setConnection(state, text) {
  const el = $('#connection');
  el.dataset.state = state;
  el.textContent = text;
}

function poll() {
  fetch('api/status', { cache: 'no-store' })
    .then((res) => res.json())
    .then((s) => {
      render(s);
      setConnection('live', 'live (polling)');
    })
    .catch(() => setConnection('offline', 'offline: retrying'))
    .finally(() => setTimeout(poll, 5000));
}

if (window.EventSource) {
  const events = new EventSource('api/events');
  events.onopen = () => setConnection('live', 'live');
  events.onerror = () => setConnection('offline', 'offline: reconnecting');
  events.onmessage = (e) => {
    setConnection('live', 'live');
    render(JSON.parse(e.data));
  };
} else {
  poll();
}
