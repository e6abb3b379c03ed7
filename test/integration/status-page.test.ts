import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startApp, type StartedApp } from '../support/app.js';
import { send } from '../support/http-client.js';
import { startSimCluster } from '../support/sim-cluster.js';
import { makeTempDir } from '../support/tmp.js';

const CHROMIUM = '/usr/bin/chromium';
const ADMIN_TOKEN = 'admin-token-0123456789';
const WAIT = { timeout: 20_000 };
type After = { after: (fn: () => unknown) => void };

// The browser globals the page-side callbacks use (the project compiles without the DOM lib).
declare const getComputedStyle: (e: unknown) => { backgroundColor: string };
declare const document: { querySelectorAll(selector: string): Iterable<{ textContent: string | null }> };
declare const sessionStorage: { getItem(key: string): string | null };

/** Debian's chromium, headless, with a throwaway profile (playwright's launch makes one); undefined when it cannot run here. */
async function launchChromium(t: After): Promise<Browser | string> {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is not installed (scripts/system-deps.sh installs Debian chromium)`;
  try {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    t.after(() => browser.close());
    return browser;
  } catch (err) {
    return `chromium at ${CHROMIUM} did not launch: ${(err as Error).message.split('\n')[0]}`;
  }
}

/**
 * Three simulated nodes, n2 signing tokens with a foreign key; health checks on, the trust probe
 * run at start, an admin token. `reload()` applies the config in force with n3 renamed n4.
 */
async function startCluster(t: After): Promise<StartedApp> {
  const tmp = makeTempDir('status-page');
  t.after(tmp.remove);
  const sim = await startSimCluster(tmp.dir, ['none', 'foreign-key', 'none']);
  t.after(() => sim.close());
  const lb: StartedApp = await startApp(
    sim.nodes.map((n) => n.url),
    {
      admin: { token: ADMIN_TOKEN },
      health: { enabled: true, interval: '300ms' },
      cache: { dir: join(tmp.dir, 'cache'), maxSize: '2GiB' },
      token: { rootCert: sim.cluster.certFile, probe: { enabled: true, interval: '1h' } },
    },
    {
      loadConfig: () => {
        const cfg = lb.app.config;
        return { ...cfg, nodes: cfg.nodes.map((n) => (n.name === 'n3' ? { ...n, name: 'n4' } : n)) };
      },
    },
  );
  t.after(() => lb.close());
  return lb;
}

const row = (page: Page, name: string) => page.locator(`tr[data-node="${name}"]`);

describe('the status page on the admin listener', () => {
  it('lists the nodes, marks the quarantined one with its flag, drains a node only with the admin token, follows a reload', async (t) => {
    const browser = await launchChromium(t);
    if (typeof browser === 'string') return t.skip(browser);
    const lb = await startCluster(t);
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n2' && l.to === 'quarantined', 20_000, 'n2 quarantined by the trust probe');
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.to === 'healthy', 20_000, 'n1 healthy by its checks');

    const page = await browser.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // A CSP refusal shows up as a console error: the page must need nothing the policy forbids.
    // Chromium also logs each non-2xx fetch; the refused drains below (401) and the favicon are expected.
    page.on('console', (m) => {
      if (m.type() === 'error' && !/favicon/.test(m.location().url) && !/status of 401 \(Unauthorized\)/.test(m.text())) pageErrors.push(m.text());
    });
    const response = await page.goto(`${lb.adminUrl}/`);
    assert.ok(response);
    const headers = response.headers();
    assert.equal(headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(headers['cache-control'], 'no-store');
    assert.equal(headers['x-frame-options'], 'DENY');
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.match(headers['content-security-policy']!, /default-src 'none'; script-src 'self'; style-src 'self'/);
    assert.match(headers['content-security-policy']!, /frame-ancestors 'none'/);

    // Every node is listed, in config order.
    await page.locator('tr[data-node]').nth(2).waitFor(WAIT);
    assert.deepEqual(await page.locator('tr[data-node]').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-node'))), ['n1', 'n2', 'n3']);
    assert.match((await row(page, 'n1').locator('.url').textContent()) ?? '', /^http:\/\/127\.0\.0\.1:\d+$/);

    // The quarantined node is marked: attribute, a visible badge, a row that looks different, its flag with evidence and fix.
    const n2 = page.locator('tr[data-node="n2"][data-state="quarantined"]');
    await n2.waitFor(WAIT);
    const badge = n2.locator('.badge');
    assert.equal(await badge.textContent(), 'quarantined');
    assert.ok(await badge.isVisible());
    await page.locator('tr[data-node="n1"][data-state="healthy"]').waitFor(WAIT);
    const background = (name: string) => row(page, name).evaluate((tr) => getComputedStyle(tr).backgroundColor);
    assert.notEqual(await background('n2'), await background('n1'), 'the quarantined row stands out from a healthy one');
    const badgeColour = (name: string) => row(page, name).locator('.badge').evaluate((b) => getComputedStyle(b).backgroundColor);
    assert.notEqual(await badgeColour('n2'), await badgeColour('n1'));
    const flag = n2.locator('li.flag[data-code="TOKEN_SIGNED_WITH_FOREIGN_KEY"]');
    await flag.waitFor(WAIT);
    assert.equal(await flag.locator('.code').textContent(), 'TOKEN_SIGNED_WITH_FOREIGN_KEY');
    assert.match((await flag.locator('.message').textContent()) ?? '', /issues tokens signed with key [A-Z2-7:]{59}; the cluster's root\.crt holds/);
    assert.match((await flag.locator('.fix').textContent()) ?? '', /^Fix: .*private_key\.pem and root\.crt/);
    assert.match((await n2.locator('.why').first().textContent()) ?? '', /\S/, 'why it is quarantined');

    // Health history: a strip of check results, filled as checks come in.
    await row(page, 'n1').locator('.strip .tick.ok').nth(2).waitFor(WAIT);

    // Live request rate: traffic through the proxy shows up as a non-zero rate between two polls.
    for (let i = 0; i < 30; i++) await send(`${lb.url}/v2/`);
    await page.waitForFunction(
      () => [...document.querySelectorAll('tr[data-node] .rate')].some((e) => /^[1-9]\d*\.\d req\/s$|^0\.[1-9] req\/s$/.test(e.textContent ?? '')),
      undefined,
      WAIT,
    );

    // Charts: every node's last 15 minutes on one time axis, its requests as bars, its state changes and flags as marks.
    await page.waitForFunction(
      () => [...document.querySelectorAll('figure.chart-box rect.req')].some((r) => Number((r as unknown as { getAttribute(n: string): string }).getAttribute('height')) > 0),
      undefined,
      WAIT,
    );
    assert.deepEqual(await page.locator('figure.chart-box').evaluateAll((fs) => fs.map((f) => f.getAttribute('data-node'))), ['n1', 'n2', 'n3']);
    const viewBoxes = await page.locator('figure.chart-box svg.chart').evaluateAll((svgs) => svgs.map((g) => g.getAttribute('viewBox')));
    assert.equal(new Set(viewBoxes).size, 1, 'one time axis for all');
    const marks = (name: string, kind: string) =>
      page.locator(`figure.chart-box[data-node="${name}"] line.mark.${kind} title`).evaluateAll((ts) => ts.map((x) => x.textContent ?? ''));
    assert.ok((await marks('n2', 'state')).some((t) => /to quarantined/.test(t)), 'n2 quarantined is marked on its chart');
    assert.ok((await marks('n2', 'flag')).some((t) => /TOKEN_SIGNED_WITH_FOREIGN_KEY raised/.test(t)), 'and its flag');
    assert.ok(!(await marks('n1', 'flag')).some((t) => /TOKEN_SIGNED_WITH_FOREIGN_KEY/.test(t)), `another node's flag is not marked on n1: ${(await marks('n1', 'flag')).join('; ')}`);

    // The sticky store panel, and the blob cache's.
    assert.match((await page.locator('#sticky').textContent()) ?? '', /storememoryconnectedyes/);
    assert.match((await page.locator('#cache').textContent()) ?? '', /^kept0\.0 MiB of 2048 MiBblobs0folder.*cache$/);

    const drainN1 = row(page, 'n1').locator('button[data-action="drain"]');
    const result = page.locator('#action-result');
    // No token: refused, shown, nothing drained.
    await drainN1.click();
    await page.locator('#action-result.bad', { hasText: 'needs the admin token' }).waitFor(WAIT);
    assert.equal(lb.app.nodes.conditionsOf(lb.app.nodes.get('n1')!).drained, false);
    // A wrong token: the same.
    await page.locator('#token').fill('admin-token-wrong-guess');
    await drainN1.click();
    await page.locator('#action-result.bad', { hasText: 'was not accepted' }).waitFor(WAIT);
    assert.equal(lb.app.nodes.conditionsOf(lb.app.nodes.get('n1')!).drained, false);
    assert.ok(!lb.logs.lines.some((l) => l.event === 'admin_action'), 'no action was taken');

    // The right token: n1 drains in the app and on the page.
    await page.locator('#token').fill(ADMIN_TOKEN);
    await drainN1.click();
    await lb.logs.waitFor((l) => l.event === 'node_state' && l.node === 'n1' && l.to === 'draining', 20_000, 'n1 draining');
    assert.equal(lb.app.nodes.get('n1')!.state, 'draining');
    await page.locator('tr[data-node="n1"][data-state="draining"] button[data-action="undrain"]').waitFor(WAIT);
    assert.match((await result.textContent()) ?? '', /n1 is now draining/);
    assert.equal(lb.app.nodes.get('n3')!.state, 'healthy', 'only the node clicked');

    // The token stays in this tab's sessionStorage, never in the address.
    assert.ok(!page.url().includes(ADMIN_TOKEN));
    assert.equal(await page.evaluate(() => sessionStorage.getItem('harbor-lb.adminToken')), ADMIN_TOKEN);

    const shots = mkdtempSync(join(tmpdir(), 'harbor-lb-status-page-shot-'));
    const shot = join(shots, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);

    // Undrain from the page too: back to what checks say.
    await row(page, 'n1').locator('button[data-action="undrain"]').click();
    await page.locator('tr[data-node="n1"][data-state="healthy"] button[data-action="drain"]').waitFor(WAIT);
    assert.equal(lb.app.nodes.get('n1')!.state, 'healthy');

    // A config reload that removes n3 and adds n4: the page follows without a reload of its own.
    assert.equal(lb.app.reload().ok, true);
    await row(page, 'n4').waitFor(WAIT);
    await row(page, 'n3').locator('.note', { hasText: 'removed from the config' }).waitFor(WAIT);
    assert.match((await page.locator('#config').textContent()) ?? '', /generation2/);
    assert.deepEqual(pageErrors, [], 'no script error and no CSP refusal');
  });

  it('refuses node actions and reload sent from a page of another origin, token or not', async (t) => {
    const lb = await startApp(['http://127.0.0.1:9'], {});
    t.after(() => lb.close());
    const host = new URL(lb.adminUrl).host;
    const drain = (headers: Record<string, string>) => send(`${lb.adminUrl}/-/nodes/n1/drain`, { method: 'POST', headers });
    for (const headers of <Array<Record<string, string>>>[{ origin: 'http://evil.example' }, { origin: 'null' }, { origin: `http://${host}.evil.example` }, { 'sec-fetch-site': 'cross-site' }]) {
      const r = await drain(headers);
      assert.equal(r.status, 403, JSON.stringify(headers));
      assert.match(JSON.parse(r.body.toString()).error, /cross-origin/);
    }
    assert.equal(lb.app.nodes.conditionsOf(lb.app.nodes.get('n1')!).drained, false);
    assert.equal((await send(`${lb.adminUrl}/-/reload`, { method: 'POST', headers: { origin: 'http://evil.example' } })).status, 403, 'reload too');
    // The page itself (same origin) and clients that are not browsers (no Origin) may act.
    assert.equal((await drain({ origin: `http://${host}`, 'sec-fetch-site': 'same-origin' })).status, 200);
    assert.equal((await drain({})).status, 200);
    assert.equal(lb.app.nodes.get('n1')!.state, 'draining');
  });

  it('without an admin token, answers only requests naming a loopback host (DNS rebinding)', async (t) => {
    const lb = await startApp(['http://127.0.0.1:9'], {});
    t.after(() => lb.close());
    // A page on rebind.evil.example re-pointed at 127.0.0.1 is same-origin as far as the browser knows.
    const rebound = { host: 'rebind.evil.example:9070', origin: 'http://rebind.evil.example:9070' };
    assert.equal((await send(`${lb.adminUrl}/-/nodes/n1/drain`, { method: 'POST', headers: rebound })).status, 403);
    assert.equal((await send(`${lb.adminUrl}/-/reload`, { method: 'POST', headers: rebound })).status, 403);
    assert.equal(lb.app.nodes.conditionsOf(lb.app.nodes.get('n1')!).drained, false);
    // Nor may it read the status, the page or the metrics (node addresses, flags, reload problems).
    for (const path of ['/-/status', '/', '/metrics']) assert.equal((await send(`${lb.adminUrl}${path}`, { headers: { host: rebound.host } })).status, 403, path);
    for (const host of ['localhost:9070', '127.0.0.1:9070', '[::1]:9070']) {
      assert.equal((await send(`${lb.adminUrl}/-/nodes/n1/undrain`, { method: 'POST', headers: { host } })).status, 200, host);
    }
  });
});
