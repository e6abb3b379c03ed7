import { STATUS_PAGE_SCRIPT } from './status-page-script.js';

/**
 * The admin listener's status page (GET /): one small HTML page, its stylesheet and its script,
 * no framework and nothing from outside our origin, so it works offline. The script fills the
 * page from /-/status every 2 s.
 */
const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>harbor-lb status</title>
<link rel="stylesheet" href="/-/status.css">
<script src="/-/status.js" defer></script>
</head>
<body>
<header>
  <h1>harbor-lb status</h1>
  <p><span id="summary"></span> <span id="updated" class="muted">loading&hellip;</span></p>
  <form id="token-form" autocomplete="off">
    <label for="token">Admin token</label>
    <input id="token" type="password" spellcheck="false" aria-describedby="token-help"> <button type="button" id="forget">Forget</button>
    <div id="token-help" class="muted">Drain and undrain need it when <code>admin.token</code> is set. It stays in this browser tab (sessionStorage), never in the address.</div>
  </form>
  <p id="action-result" role="status"></p>
</header>
<noscript><p class="error">This page needs JavaScript: it reads <a href="/-/status">/-/status</a> (JSON) every 2 s. Without it, read that JSON or run <code>harbor-lb status --admin URL</code>.</p></noscript>
<p id="error" class="error" role="alert" hidden></p>
<main>
<section>
  <h2>Nodes</h2>
  <div class="scroll">
  <table id="nodes">
    <thead><tr><th>Node</th><th>State and why</th><th>Traffic</th><th>Flags (evidence, fix)</th><th>Clock offset</th><th>Health checks (oldest first)</th><th>Action</th></tr></thead>
    <tbody></tbody>
  </table>
  </div>
</section>
<section>
  <h2>Traffic, last 15 minutes</h2>
  <p class="muted">Requests (blue) and failures (red) per second, every 10 s, one time axis for every node; marks: state changes (orange) and flags (red). Kept by harbor-lb in memory: since its start, at most 15 minutes.</p>
  <div id="charts"></div>
</section>
<div class="panels">
<section><h2>Sticky store</h2><dl id="sticky"></dl></section>
<section><h2>Cluster rules</h2><dl id="cluster"></dl></section>
<section id="cache-panel" hidden><h2>Blob cache</h2><dl id="cache"></dl></section>
<section id="config-panel" hidden><h2>Config</h2><dl id="config"></dl></section>
</div>
</main>
</body>
</html>
`;

const CSS = `:root { color-scheme: light; --bad: #b3261e; --warn: #8a5300; --good: #1e6b34; --muted: #5f6368; --line: #d0d4d9; }
* { box-sizing: border-box; }
body { font: 15px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; padding: 1rem 1.5rem; max-width: 100rem; color: #1f2328; background: #fff; }
body.stale main { opacity: 0.6; }
h1 { font-size: 1.4rem; margin: 0 0 0.2rem; }
h2 { font-size: 1.1rem; margin: 1.4rem 0 0.5rem; }
code, .url, .code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 0.9em; }
.muted { color: var(--muted); font-size: 0.9em; }
.error { background: #fce8e6; color: var(--bad); border: 1px solid #f4b4ad; padding: 0.5rem 0.8rem; border-radius: 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 0.5rem 0.6rem; border-bottom: 1px solid var(--line); }
th { font-size: 0.85rem; color: var(--muted); font-weight: 600; border-bottom-width: 2px; }
tr[data-state="quarantined"] { background: #fde7e5; box-shadow: inset 4px 0 0 var(--bad); }
tr[data-state="unhealthy"] { background: #fff3e0; box-shadow: inset 4px 0 0 var(--warn); }
tr[data-state="draining"] { background: #eef1f6; box-shadow: inset 4px 0 0 #44618a; }
tr[data-state="unknown"] { background: #f5f5f5; }
.name { font-weight: 600; }
.badge { display: inline-block; padding: 0.1rem 0.55rem; border-radius: 1rem; font-weight: 600; font-size: 0.85rem; color: #fff; background: var(--muted); }
.badge[data-state="healthy"] { background: var(--good); }
.badge[data-state="unhealthy"] { background: var(--warn); }
.badge[data-state="quarantined"] { background: var(--bad); }
.badge[data-state="draining"] { background: #44618a; }
.why { margin-top: 0.25rem; max-width: 28rem; overflow-wrap: anywhere; }
.note { color: var(--warn); font-size: 0.9em; }
.bad { color: var(--bad); }
.good { color: var(--good); }
.pending { color: var(--muted); }
ul.flags { list-style: none; margin: 0; padding: 0; }
li.flag { margin-bottom: 0.5rem; max-width: 36rem; overflow-wrap: anywhere; }
li.flag .code { color: var(--bad); font-weight: 600; }
li.flag .fix { color: var(--good); }
.strip { display: flex; gap: 2px; flex-wrap: wrap; }
.tick { display: inline-block; width: 1.1rem; text-align: center; font-size: 0.8rem; border-radius: 2px; color: #fff; }
.tick.ok { background: var(--good); }
.tick.fail { background: var(--bad); }
button { font: inherit; padding: 0.25rem 0.8rem; cursor: pointer; }
button:disabled { cursor: wait; }
#token-form { margin: 0.6rem 0 0; }
#token-form label { font-weight: 600; margin-right: 0.4rem; }
input#token { font: inherit; padding: 0.25rem; width: 22rem; max-width: 100%; }
.rate, .offset, .badge { white-space: nowrap; }
#action-result { min-height: 1.4em; }
.panels { display: flex; gap: 3rem; flex-wrap: wrap; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2rem 1rem; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; }

#charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(24rem, 1fr)); gap: 0.8rem 1.5rem; }
.chart-box h3 { font-size: 0.95rem; margin: 0 0 0.2rem; }
svg.chart { width: 100%; height: 6rem; border-bottom: 1px solid var(--line); }
svg.chart .req { fill: #4a78c2; }
svg.chart .fail { fill: var(--bad); }
svg.chart .mark { stroke-width: 2; }
svg.chart .mark.state { stroke: var(--warn); }
svg.chart .mark.flag { stroke: var(--bad); stroke-dasharray: 3 2; }
svg.chart text { font-size: 10px; fill: var(--muted); }
`;

/**
 * Headers of every page asset: never cached (it shows live state), never framed (it has action
 * buttons: clickjacking), never sniffed, and a CSP that allows only our own origin's script and
 * style (no inline code), fetches to ourselves, and no form submission anywhere.
 */
const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

export interface PageAsset {
  contentType: string;
  body: string;
}

/** The page's files by admin path. */
export const STATUS_PAGE_ASSETS: ReadonlyMap<string, PageAsset> = new Map([
  ['/', { contentType: 'text/html; charset=utf-8', body: HTML }],
  ['/-/status.css', { contentType: 'text/css; charset=utf-8', body: CSS }],
  ['/-/status.js', { contentType: 'text/javascript; charset=utf-8', body: STATUS_PAGE_SCRIPT }],
]);

export function pageHeaders(asset: PageAsset): Record<string, string | number> {
  return { 'content-type': asset.contentType, 'content-length': Buffer.byteLength(asset.body), ...SECURITY_HEADERS };
}
