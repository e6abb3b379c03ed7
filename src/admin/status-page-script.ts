/**
 * The status page's script, served as /-/status.js (a file of our origin, so the page's CSP needs
 * no inline script). Plain browser JavaScript, no framework: it polls /-/status and /-/history
 * (drawing each node's last 15 minutes as inline SVG), renders with
 * textContent only (node names and flag messages come from the nodes' own answers), computes
 * request rates from the counters' deltas between polls, and sends drain/undrain with the admin
 * token the operator typed, kept in sessionStorage (this tab only, never in the URL).
 */
export const STATUS_PAGE_SCRIPT = String.raw`'use strict';
(function () {
  var POLL_MS = 2000;
  var TOKEN_KEY = 'harbor-lb.adminToken';
  var byId = function (id) { return document.getElementById(id); };
  /** Per node name: its table row, the cells rewritten each poll, and the counters of the last poll. */
  var rows = new Map();
  var timer = 0;
  var polling = false;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function ago(iso) {
    var ms = Date.now() - Date.parse(iso);
    if (!isFinite(ms)) return '';
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 90) return s + ' s ago';
    if (s < 5400) return Math.round(s / 60) + ' min ago';
    if (s < 172800) return Math.round(s / 3600) + ' h ago';
    return Math.round(s / 86400) + ' d ago';
  }

  function localTime(iso) {
    var d = new Date(iso);
    return isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }

  function rate(now, prev, key, t) {
    if (!prev || now[key] < prev[key] || t <= prev.t) return '-';
    return ((now[key] - prev[key]) / ((t - prev.t) / 1000)).toFixed(1);
  }

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return byId('token').value; }
  }

  function say(text, kind) {
    var p = byId('action-result');
    p.textContent = text;
    p.className = kind;
  }

  function newRow(name) {
    var tr = el('tr');
    tr.setAttribute('data-node', name);
    var cells = {};
    ['node', 'state', 'traffic', 'flags', 'clock', 'checks', 'action'].forEach(function (k) {
      cells[k] = el('td', 'col-' + k);
      tr.append(cells[k]);
    });
    var button = el('button', 'action');
    button.type = 'button';
    button.addEventListener('click', function () { act(name, button.getAttribute('data-action'), button); });
    cells.action.append(button);
    return { tr: tr, cells: cells, button: button, prev: null };
  }

  function renderNode(row, n, t) {
    row.tr.setAttribute('data-state', n.state);
    var c = row.cells;

    var name = el('div', 'name', n.name);
    var url = el('div', 'url', n.url);
    var weight = el('div', 'muted', 'weight ' + n.weight);
    c.node.replaceChildren(name, url, weight);

    var badge = el('span', 'badge', n.state);
    badge.setAttribute('data-state', n.state);
    var why = el('div', 'why', n.why);
    var since = el('div', 'muted', 'since ' + ago(n.since));
    since.title = localTime(n.since);
    var parts = [badge, why, since];
    var cond = n.conditions || {};
    var notes = [];
    // Conditions in force besides the one the state already shows (drain wins over quarantine, which wins over health).
    if (cond.drained && n.state !== 'draining') notes.push('drained by an operator');
    if (cond.quarantine && n.state !== 'quarantined') notes.push('quarantine: ' + cond.quarantine);
    if (cond.ejected && n.ejectedUntil) notes.push('ejected until ' + localTime(n.ejectedUntil));
    if (cond.reachable === false) notes.push('not reachable');
    if (n.removed) notes.push('removed from the config: leaves once its requests are done');
    notes.forEach(function (x) { parts.push(el('div', 'note', x)); });
    c.state.replaceChildren.apply(c.state, parts);

    var reqRate = rate(n, row.prev, 'requests', t);
    var failRate = rate(n, row.prev, 'failures', t);
    c.traffic.replaceChildren(
      el('div', 'rate', reqRate + ' req/s'),
      el('div', failRate !== '-' && Number(failRate) > 0 ? 'rate bad' : 'rate', failRate + ' failed/s'),
      el('div', n.queued > 0 ? 'rate bad' : 'muted', n.inflight + ' in flight' + (n.queued > 0 ? ', ' + n.queued + ' waiting' : '')),
      el('div', 'muted', n.requests + ' sent, ' + n.failures + ' failed in all'),
    );
    row.prev = { requests: n.requests, failures: n.failures, t: t };

    if (!n.flags || n.flags.length === 0) {
      c.flags.replaceChildren(el('span', 'muted', 'none'));
    } else {
      var list = el('ul', 'flags');
      n.flags.forEach(function (f) {
        var li = el('li', 'flag');
        li.setAttribute('data-code', f.code);
        li.append(el('code', 'code', f.code), el('div', 'message', f.message));
        if (f.fix) li.append(el('div', 'fix', 'Fix: ' + f.fix));
        var s = el('div', 'muted', 'since ' + ago(f.since));
        s.title = localTime(f.since);
        li.append(s);
        list.append(li);
      });
      c.flags.replaceChildren(list);
    }

    var off = n.clockOffsetMs;
    c.clock.replaceChildren(el('span', off === null || off === undefined ? 'muted' : 'offset', off === null || off === undefined ? 'no sample' : (off > 0 ? '+' : '') + off + ' ms'));

    var history = n.history || [];
    if (history.length === 0) {
      c.checks.replaceChildren(el('span', 'muted', n.lastCheck ? '' : 'no checks yet (or checks are off)'));
    } else {
      var strip = el('div', 'strip');
      strip.setAttribute('aria-label', history.filter(function (h) { return h.ok; }).length + ' of the last ' + history.length + ' checks passed');
      history.forEach(function (h) {
        var tick = el('span', h.ok ? 'tick ok' : 'tick fail', h.ok ? '\u2713' : '\u2717');
        tick.title = localTime(h.at) + ': ' + (h.ok ? 'passed' : 'failed') + ', ' + h.detail;
        strip.append(tick);
      });
      var last = history[history.length - 1];
      var lastLine = el('div', last.ok ? 'muted' : 'why bad', 'last ' + ago(last.at) + ': ' + last.detail);
      var streak = n.consecutiveFailures > 0 ? el('div', 'note', n.consecutiveFailures + ' request failures in a row') : '';
      c.checks.replaceChildren(strip, lastLine, streak);
    }

    var drained = !!cond.drained;
    row.button.setAttribute('data-action', drained ? 'undrain' : 'drain');
    row.button.textContent = drained ? 'Undrain' : 'Drain';
    row.button.title = (drained ? 'Send traffic to ' : 'Stop sending new traffic to ') + n.name;
  }

  function renderList(target, pairs) {
    var items = [];
    pairs.forEach(function (p) {
      var dd = el('dd', p[2] || '', p[1]);
      items.push(el('dt', '', p[0]), dd);
    });
    target.replaceChildren.apply(target, items);
  }

  function render(doc) {
    var t = performance.now();
    var tbody = byId('nodes').tBodies[0];
    var seen = new Set();
    doc.nodes.forEach(function (n, i) {
      seen.add(n.name);
      var row = rows.get(n.name);
      if (!row) { row = newRow(n.name); rows.set(n.name, row); }
      renderNode(row, n, t);
      // Keep rows in the document's order without moving a row that is already in place.
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] || null);
    });
    // Nodes removed by a config reload.
    rows.forEach(function (row, name) {
      if (!seen.has(name)) { row.tr.remove(); rows.delete(name); }
    });
    var counts = {};
    doc.nodes.forEach(function (n) { counts[n.state] = (counts[n.state] || 0) + 1; });
    byId('summary').textContent = doc.nodes.length + ' nodes: ' + Object.keys(counts).sort().map(function (k) { return counts[k] + ' ' + k; }).join(', ');

    var s = doc.sticky || {};
    renderList(byId('sticky'), [
      ['store', s.store],
      ['connected', s.connected ? 'yes' : 'no', s.connected ? 'good' : 'bad'],
      ['entries', s.entries === undefined ? 'unknown' : s.entries],
    ]);
    var ca = doc.cache;
    byId('cache-panel').hidden = !ca;
    if (ca) {
      renderList(byId('cache'), [
        ['kept', (ca.size / 1048576).toFixed(1) + ' MiB of ' + (ca.maxSize / 1048576).toFixed(0) + ' MiB'],
        ['blobs', ca.blobs],
        ['folder', ca.dir],
      ]);
    }
    var cl = doc.cluster || {};
    renderList(byId('cluster'), [
      ['panic mode', cl.panic ? 'on: too few nodes available, routing over every node that answers' : 'off', cl.panic ? 'bad' : ''],
      ['cluster failure', cl.degraded ? 'every node answers ' + cl.degraded.status + (cl.degraded.route ? ' on ' + cl.degraded.route + ' requests' : '') + ' since ' + localTime(cl.degraded.since) : 'none', cl.degraded ? 'bad' : ''],
      ['at most ejected', cl.maxEjected],
    ]);
    var cf = doc.config;
    byId('config-panel').hidden = !cf;
    if (cf) {
      var last = cf.lastReload;
      renderList(byId('config'), [
        ['generation', cf.generation],
        ['loaded', localTime(cf.loadedAt)],
        ['last reload', last ? (last.ok ? 'applied' : 'refused: ' + (last.problems || []).join('; ')) + ' at ' + localTime(last.at) : 'none yet', last && !last.ok ? 'bad' : ''],
        ['waiting for a restart', cf.restartNeeded && cf.restartNeeded.length ? cf.restartNeeded.join(', ') : 'nothing', cf.restartNeeded && cf.restartNeeded.length ? 'bad' : ''],
      ]);
    }
  }

  var SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** One node's chart: a bar per step (requests, failures in front), its events as marks; x is the same for every node. */
  function chart(h, n) {
    var W = 720, H = 90, BASE = 76;
    var from = h.now - h.spanMs;
    var x = function (t) { return Math.max(0, Math.min(W, ((t - from) / h.spanMs) * W)); };
    var max = 1;
    n.points.forEach(function (p) { if (p[1] > max) max = p[1]; });
    var y = function (v) { return (v / max) * (BASE - 12); };
    var box = el('figure', 'chart-box');
    box.setAttribute('data-node', n.name);
    box.append(el('h3', '', n.name));
    var g = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', role: 'img', preserveAspectRatio: 'none' });
    g.setAttribute('aria-label', n.name + ': up to ' + max + ' requests per second over the last ' + Math.round(h.spanMs / 60000) + ' minutes');
    var barW = Math.max(1, (h.stepMs / h.spanMs) * W - 1);
    n.points.forEach(function (p) {
      var right = x(p[0]);
      var req = svg('rect', { class: 'req', x: right - barW, width: barW, y: BASE - y(p[1]), height: y(p[1]) });
      req.append(svg('title', {}, localTime(new Date(p[0]).toISOString()) + ': ' + p[1] + ' req/s, ' + p[2] + ' failed/s'));
      g.append(req);
      if (p[2] > 0) g.append(svg('rect', { class: 'fail', x: right - barW, width: barW, y: BASE - y(p[2]), height: y(p[2]) }));
    });
    h.events.forEach(function (e) {
      if (e.node !== n.name) return;
      var mark = svg('line', { class: 'mark ' + e.kind, x1: x(e.at), x2: x(e.at), y1: 0, y2: BASE });
      mark.append(svg('title', {}, localTime(new Date(e.at).toISOString()) + ': ' + e.text));
      g.append(mark);
    });
    g.append(svg('text', { x: 2, y: H - 2 }, '-' + Math.round(h.spanMs / 60000) + ' min'));
    g.append(svg('text', { x: W - 2, y: H - 2, 'text-anchor': 'end' }, 'now'));
    g.append(svg('text', { x: 2, y: 10 }, max + ' req/s'));
    box.append(g);
    return box;
  }

  function renderCharts(h) {
    byId('charts').replaceChildren.apply(byId('charts'), h.nodes.map(function (n) { return chart(h, n); }));
  }

  async function poll() {
    clearTimeout(timer);
    if (polling) return;
    polling = true;
    try {
      var res = await fetch('/-/status', { cache: 'no-store', headers: { accept: 'application/json' } });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      render(await res.json());
      var hist = await fetch('/-/history', { cache: 'no-store', headers: { accept: 'application/json' } });
      if (hist.ok) renderCharts(await hist.json());
      byId('error').hidden = true;
      document.body.classList.remove('stale');
      byId('updated').textContent = 'updated ' + new Date().toLocaleTimeString() + ', every ' + POLL_MS / 1000 + ' s';
    } catch (e) {
      byId('error').textContent = 'Cannot read /-/status (' + (e && e.message ? e.message : e) + '); showing the last answer, retrying every ' + POLL_MS / 1000 + ' s.';
      byId('error').hidden = false;
      document.body.classList.add('stale');
    } finally {
      polling = false;
      timer = setTimeout(poll, POLL_MS);
    }
  }

  async function act(name, action, button) {
    var tok = token();
    var headers = {};
    if (tok) headers.authorization = 'Bearer ' + tok;
    button.disabled = true;
    say(action + ' ' + name + '...', 'pending');
    try {
      var res = await fetch('/-/nodes/' + encodeURIComponent(name) + '/' + action, { method: 'POST', headers: headers, cache: 'no-store' });
      var body = {};
      try { body = await res.json(); } catch (e) { /* not JSON: the status line says enough */ }
      if (res.status === 401) {
        say('Refused: ' + action + ' ' + name + ' needs the admin token (admin.token). ' + (tok ? 'The token entered was not accepted.' : 'Enter it under "Admin token".'), 'bad');
      } else if (!res.ok) {
        say(action + ' ' + name + ' failed: HTTP ' + res.status + (body.error ? ': ' + body.error : ''), 'bad');
      } else {
        say(body.node + ' is now ' + body.state + ' (' + action + ' at ' + new Date().toLocaleTimeString() + ')', 'good');
      }
    } catch (e) {
      say(action + ' ' + name + ' failed: ' + (e && e.message ? e.message : e), 'bad');
    } finally {
      button.disabled = false;
      poll();
    }
  }

  function setupToken() {
    var input = byId('token');
    input.value = token();
    input.addEventListener('input', function () {
      try {
        if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
        else sessionStorage.removeItem(TOKEN_KEY);
      } catch (e) { /* storage off: the input's value is used directly */ }
    });
    byId('token-form').addEventListener('submit', function (ev) { ev.preventDefault(); });
    byId('forget').addEventListener('click', function () {
      input.value = '';
      try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ }
      say('Token forgotten.', '');
    });
  }

  setupToken();
  poll();
})();
`;
