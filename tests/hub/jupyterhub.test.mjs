// slurmbook on a JupyterHub, driven in a real headless Chromium (Debian's
// /usr/bin/chromium; no browser is ever downloaded) with playwright-core.
//
//   node jupyterhub.test.mjs --url http://127.0.0.1:PORT --user root --password PW \
//        --notebook hub.ipynb --steps 8 --out result.json --artifacts DIR
//
// The hub is started by test_jupyterhub.py. This script acts as a user would
// (login form, Shift+Enter) and records what the DOM shows, step by step,
// into one JSON document: { steps: { name: { ok, error?, ...facts } },
// screenshots, console, page_errors, elapsed_ms }. The pytest side asserts
// on the facts, so a failing step never hides the others.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const BASE = (args.url || '').replace(/\/$/, '');
const USER = args.user || 'root';
const PASSWORD = args.password || '';
const NOTEBOOK = args.notebook || 'hub.ipynb';
const STEPS = Number(args.steps || 8);
const OUT = args.out || null;
const ART = args.artifacts || path.join(path.dirname(new URL(import.meta.url).pathname), 'output');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BUDGET_MS = Number(process.env.HUB_TEST_BUDGET_MS || 600_000);
if (!BASE || !PASSWORD) {
  console.error('usage: node jupyterhub.test.mjs --url URL --user USER --password PW [--notebook NB] [--out FILE] [--artifacts DIR]');
  process.exit(2);
}
fs.mkdirSync(ART, { recursive: true });

const KERNEL = 'Rust (slurmbook)';
const started = Date.now();
const result = { steps: {}, screenshots: {}, console: [], page_errors: [], elapsed_ms: 0 };
const remaining = () => BUDGET_MS - (Date.now() - started);
const within = (ms) => Math.max(1_000, Math.min(ms, remaining()));

function save() {
  result.elapsed_ms = Date.now() - started;
  const text = JSON.stringify(result, null, 2);
  if (OUT) fs.writeFileSync(OUT, text);
  return text;
}

let page;

async function shot(name) {
  const file = path.join(ART, `${name}.png`);
  try {
    await page.screenshot({ path: file });
    result.screenshots[name] = file;
  } catch (e) {
    result.screenshots[name] = `failed: ${e.message.split('\n')[0]}`;
  }
}

// Runs one step; its facts are recorded even when it throws halfway.
async function step(name, fn) {
  const facts = { ok: false };
  result.steps[name] = facts;
  const t0 = Date.now();
  try {
    if (remaining() <= 0) throw new Error(`time budget of ${BUDGET_MS} ms used up before this step`);
    await fn(facts);
    facts.ok = true;
  } catch (e) {
    facts.error = String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n');
    await shot(`failed-${name}`);
  }
  facts.ms = Date.now() - t0;
  save();
  return facts.ok;
}

let PANEL = null;

async function usePanel(title, timeout = 90_000) {
  const tab = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current', { hasText: title });
  await tab.waitFor({ timeout: within(timeout) });
  const id = await tab.getAttribute('data-id');
  PANEL = page.locator(`.jp-NotebookPanel[id="${id}"]`);
  await PANEL.locator('.jp-Notebook .jp-Cell').first().waitFor({ timeout: within(timeout) });
}

async function waitKernelIdle(timeout = 120_000) {
  await PANEL.locator('.jp-Toolbar-kernelName', { hasText: KERNEL }).waitFor({ timeout: within(timeout) });
  await PANEL.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').waitFor({ timeout: within(timeout) });
}

async function cellSources() {
  return PANEL.locator('.jp-Notebook .jp-Cell').evaluateAll((els) =>
    els.map((e) => {
      const ed = e.querySelector('.jp-InputArea-editor .cm-content');
      return e.classList.contains('jp-CodeCell') && ed ? ed.textContent : null;
    }),
  );
}

// The index of the code cell whose source starts with `prefix`.
async function cellIndex(prefix, timeout = 30_000) {
  const deadline = Date.now() + within(timeout);
  let srcs = [];
  while (Date.now() < deadline) {
    srcs = await cellSources();
    const i = srcs.findIndex((s) => s !== null && s.startsWith(prefix));
    if (i >= 0) return i;
    await page.waitForTimeout(250);
  }
  throw new Error(`no code cell starting with ${JSON.stringify(prefix)}; code cells: ${JSON.stringify(srcs.filter((s) => s !== null))}`);
}

const cellAt = (i) => PANEL.locator('.jp-Notebook .jp-Cell').nth(i);

async function promptOf(cell) {
  return ((await cell.locator('.jp-InputArea-prompt').textContent()) || '').trim();
}

async function outputText(cell) {
  return (await cell.locator('.jp-OutputArea').innerText().catch(() => '')) || '';
}

async function outputsOf(cell) {
  return cell.locator('.jp-OutputArea-output').evaluateAll((els) =>
    els.map((e) => ({ mime: e.getAttribute('data-mime-type'), text: e.innerText })));
}

async function tableRows(cell) {
  return cell.locator('.jp-OutputArea-output table tbody tr').evaluateAll((trs) =>
    trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
}

// Clicks into cell i and runs it with Shift+Enter (its saved source).
async function startCell(i) {
  const cell = cellAt(i);
  await cell.scrollIntoViewIfNeeded({ timeout: within(10_000) });
  await cell.locator('.jp-InputArea-editor .cm-content').click({ timeout: within(10_000) });
  const before = await promptOf(cell);
  await page.keyboard.press('Shift+Enter');
  return { cell, i, before };
}

async function waitCell({ cell, i, before }, timeout = 120_000) {
  const deadline = Date.now() + within(timeout);
  for (;;) {
    const p = await promptOf(cell);
    if (/\[\d+\]/.test(p) && p !== before) return cell;
    if (Date.now() > deadline) {
      throw new Error(`cell ${i} did not finish in ${timeout} ms; prompt ${p}; output so far: ${(await outputText(cell)).slice(0, 600)}`);
    }
    await page.waitForTimeout(200);
  }
}

async function runCell(prefix, timeout = 120_000) {
  return waitCell(await startCell(await cellIndex(prefix)), timeout);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--disable-quic', '--no-first-run'],
    timeout: 60_000,
  });
  result.browser_version = browser.version();
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
    page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') result.console.push(`${m.type()}: ${m.text()}`.slice(0, 500));
    });
    page.on('pageerror', (e) => result.page_errors.push(String(e.message || e).slice(0, 500)));

    // 1. The hub's login form: a wrong password is refused, the right one
    //    spawns the user's server and lands in JupyterLab.
    await step('login', async (f) => {
      await page.goto(`${BASE}/hub/login`, { timeout: within(60_000) });
      await page.locator('#username_input').fill(USER);
      await page.locator('#password_input').fill(`${PASSWORD}-wrong`);
      await page.locator('#login_submit').click();
      await page.locator('.login_error').waitFor({ timeout: within(30_000) });
      f.wrong_password_error = (await page.locator('.login_error').innerText()).trim();
      f.after_wrong_password = new URL(page.url()).pathname;
      await page.locator('#username_input').fill(USER);
      await page.locator('#password_input').fill(PASSWORD);
      await shot('01-login');
      await page.locator('#login_submit').click();
      // The spawn-pending page, then JupyterLab of the user's server.
      await page.waitForURL(/\/user\/[^/]+\/lab/, { timeout: within(180_000) });
      f.landed = new URL(page.url()).pathname;
    });

    // 2. The notebook, opened from the user's notebook directory.
    await step('open', async (f) => {
      await page.goto(`${BASE}/user/${USER}/lab/tree/${NOTEBOOK}?reset`, { timeout: within(90_000) });
      await usePanel(NOTEBOOK);
      await waitKernelIdle();
      f.toolbar_kernel = (await PANEL.locator('.jp-Toolbar-kernelName').textContent()).trim();
      const resp = await page.request.get(`${BASE}/user/${USER}/api/kernelspecs`);
      f.kernelspecs_status = resp.status();
      f.kernelspecs = await resp.json();
      await shot('02-notebook');
    });

    // 3. %config: the transport and where each value comes from.
    await step('config', async (f) => {
      const cell = await runCell('%config', 60_000);
      f.outputs = await outputsOf(cell);
    });

    // 4. %materialize +total: watch the cell while the Slurm job runs.
    await step('materialize', async (f) => {
      const i = await cellIndex('%materialize');
      // Every distinct state of the cell's output, recorded in the page.
      await cellAt(i).evaluate((cellEl) => {
        window.__sbStates = [];
        const snap = () => {
          const out = cellEl.querySelector('.jp-OutputArea');
          const text = out ? out.innerText : '';
          const prompt = (cellEl.querySelector('.jp-InputArea-prompt')?.textContent || '').trim();
          const lines = (text.match(/\[total\] step \d+ of \d+/g) || []).length;
          const last = window.__sbStates.at(-1);
          if (!last || last.lines !== lines || last.prompt !== prompt) window.__sbStates.push({ lines, prompt });
        };
        window.__sbObs = new MutationObserver(snap);
        window.__sbObs.observe(cellEl, { subtree: true, childList: true, characterData: true });
      });
      const run = await startCell(i);
      const cell = cellAt(i);
      // While it runs: the first job line is in the cell, the cell still executing.
      await cell.locator('.jp-OutputArea-output', { hasText: `[total] step 1 of ${STEPS}` }).first()
        .waitFor({ timeout: within(300_000) });
      f.during = {
        prompt: await promptOf(cell),
        text: await outputText(cell),
        rows: await tableRows(cell),
      };
      await cell.evaluate((el) => el.scrollIntoView({ block: 'start' }));
      await shot('03-streaming');
      await waitCell(run, 300_000);
      f.states = await page.evaluate(() => { window.__sbObs.disconnect(); return window.__sbStates; });
      // How many job lines the cell showed, state after state, while it ran.
      f.line_counts = f.states.filter((s) => s.prompt === '[*]:' && s.lines > 0).map((s) => s.lines)
        .filter((n, k, all) => k === 0 || n !== all[k - 1]);
      f.final_text = await outputText(cell);
      f.final_rows = await tableRows(cell);
      await cell.evaluate((el) => el.scrollIntoView({ block: 'start' }));
      await page.waitForTimeout(300);
      await shot('04-materialized');
    });

    // 5. %load total, then the value in the session.
    await step('load', async (f) => {
      let cell = await runCell('%load total', 120_000);
      f.load = await outputsOf(cell);
      cell = await runCell('total', 180_000);
      f.value = await outputsOf(cell);
      await cell.evaluate((el) => el.scrollIntoView({ block: 'center' }));
      await page.waitForTimeout(300);
      await shot('05-value');
    });

    // 6. The kernel's executable and PATH, and the control call of `ssh`.
    await step('checks', async (f) => {
      const cell = await runCell('let control', 180_000);
      f.outputs = await outputsOf(cell);
    });
  } finally {
    save();
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  result.fatal = `the hub test exceeded its budget of ${BUDGET_MS + 30_000} ms and was stopped`;
  console.log(save());
  process.exit(3);
}, BUDGET_MS + 30_000);

main()
  .then(() => {
    clearTimeout(watchdog);
    console.log(save());
  })
  .catch((e) => {
    clearTimeout(watchdog);
    result.fatal = String(e && e.stack ? e.stack : e).slice(0, 2000);
    console.log(save());
    process.exit(1);
  });
