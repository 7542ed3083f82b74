// slurmbook in JupyterLab 4, driven in a real headless Chromium (Debian's
// /usr/bin/chromium; no browser is ever downloaded) with playwright-core.
//
//   node jupyterlab.test.mjs --url http://127.0.0.1:PORT --token TOKEN --out result.json --artifacts DIR
//
// The server is started by test_jupyterlab.py (root dir: copies of
// notebooks/quickstart.ipynb and notebooks/hello.ipynb). This script acts as a
// user would (clicks, typing, Shift+Enter) and records what the DOM shows, step
// by step, into one JSON document: { steps: { name: { ok, error?, ...facts } },
// screenshots, console, elapsed_ms }. The pytest side asserts on the facts, so
// a failing step never hides the others and every message names what was seen.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const BASE = (args.url || process.env.LAB_URL || '').replace(/\/$/, '');
const TOKEN = args.token || process.env.LAB_TOKEN || '';
const OUT = args.out || null;
const ART = args.artifacts || path.join(path.dirname(new URL(import.meta.url).pathname), 'artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BUDGET_MS = Number(process.env.BROWSER_TEST_BUDGET_MS || 210_000);
if (!BASE) {
  console.error('usage: node jupyterlab.test.mjs --url URL --token TOKEN [--out FILE] [--artifacts DIR]');
  process.exit(2);
}
fs.mkdirSync(ART, { recursive: true });

const KERNEL = 'Rust (slurmbook)';
const ASSETS = ['readings', 'celsius', 'fahrenheit', 'stats', 'extremes', 'report'];
// An escape character, or what is left of an SGR sequence when the escape
// character was dropped ("[31m", "[1;32m", "[0m").
const RAW_ANSI = /\u001b|\[(\d{1,3};)*\d{1,3}m/;

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

const labUrl = (p, extra = '') => `${BASE}${p}?${extra}${extra ? '&' : ''}token=${encodeURIComponent(TOKEN)}`;

// The notebook panel in front (set by usePanel: the widget of the current tab).
let PANEL = null;
const panel = () => PANEL;

async function usePanel(title, timeout = 60_000) {
  const tab = page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current', { hasText: title });
  await tab.waitFor({ timeout: within(timeout) });
  const id = await tab.getAttribute('data-id');
  PANEL = page.locator(`.jp-NotebookPanel[id="${id}"]`);
  await PANEL.locator('.jp-Notebook .jp-Cell').first().waitFor({ timeout: within(timeout) });
  return PANEL;
}

async function waitKernelIdle(timeout = 90_000) {
  const p = panel();
  await p.locator('.jp-Toolbar-kernelName', { hasText: KERNEL }).waitFor({ timeout: within(timeout) });
  await p.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]').waitFor({ timeout: within(timeout) });
  // The status bar names the kernel and its state once it is connected.
  await page.locator('.jp-StatusBar-Widget', { hasText: `${KERNEL} | Idle` }).waitFor({ timeout: within(timeout) });
}

async function cellSources() {
  return panel().locator('.jp-Notebook .jp-Cell').evaluateAll((els) =>
    els.map((e) => {
      const ed = e.querySelector('.jp-InputArea-editor .cm-content');
      return e.classList.contains('jp-CodeCell') && ed ? ed.textContent : null;
    }),
  );
}

// The code cell whose source is exactly `src` (waits until the notebook shows it).
async function cellIndex(src, timeout = 30_000) {
  const deadline = Date.now() + within(timeout);
  let srcs = [];
  while (Date.now() < deadline) {
    srcs = await cellSources();
    const i = srcs.indexOf(src);
    if (i >= 0) return i;
    await page.waitForTimeout(250);
  }
  throw new Error(`no code cell with source ${JSON.stringify(src)}; code cells: ${JSON.stringify(srcs.filter((s) => s !== null))}`);
}

const cellAt = (i) => panel().locator('.jp-Notebook .jp-Cell').nth(i);

async function promptOf(cell) {
  return ((await cell.locator('.jp-InputArea-prompt').textContent()) || '').trim();
}

// Types `code` into cell i (replacing what is there) and runs it with
// Shift+Enter; returns what waitCell needs.
async function startCell(i, code) {
  const cell = cellAt(i);
  await cell.scrollIntoViewIfNeeded({ timeout: within(10_000) });
  await cell.locator('.jp-InputArea-editor .cm-content').click({ timeout: within(10_000) });
  if (code !== undefined) {
    await page.keyboard.press('ControlOrMeta+a');
    await page.keyboard.insertText(code);
  }
  const before = await promptOf(cell);
  await page.keyboard.press('Shift+Enter');
  return { cell, i, code, before };
}

// Waits for the execution count of a started cell to appear.
async function waitCell({ cell, i, code, before }, timeout = 90_000) {
  const deadline = Date.now() + within(timeout);
  for (;;) {
    const p = await promptOf(cell);
    if (/\[\d+\]/.test(p) && p !== before) return cell;
    if (Date.now() > deadline) {
      const out = await outputText(cell);
      throw new Error(`cell ${i} (${JSON.stringify(code ?? '')}) did not finish in ${timeout} ms; prompt ${p}; output so far: ${out.slice(0, 400)}`);
    }
    await page.waitForTimeout(200);
  }
}

async function runCell(i, code, timeout = 90_000) {
  return waitCell(await startCell(i, code), timeout);
}

async function outputText(cell) {
  return (await cell.locator('.jp-OutputArea').innerText().catch(() => '')) || '';
}

// Every output of a cell: its renderer's mime type, classes, and text.
async function outputsOf(cell) {
  return cell.locator('.jp-OutputArea-output').evaluateAll((els) =>
    els.map((e) => ({
      mime: e.getAttribute('data-mime-type'),
      classes: [...e.classList].filter((c) => !['lm-Widget', 'jp-OutputArea-output'].includes(c)),
      text: e.innerText,
      html: e.innerHTML.length > 20_000 ? e.innerHTML.slice(0, 20_000) : e.innerHTML,
    })),
  );
}

async function ansiIn(locator) {
  const texts = await locator.locator('.jp-OutputArea-output').allInnerTexts();
  return texts.filter((t) => RAW_ANSI.test(t)).map((t) => t.slice(0, 300));
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

    // 1. The launcher offers the kernel, with its logo.
    await step('launcher', async (f) => {
      await page.goto(labUrl('/lab', 'reset'), { timeout: within(60_000) });
      const cards = page.locator('.jp-LauncherCard');
      await cards.first().waitFor({ timeout: within(60_000) });
      await page.locator('.jp-LauncherCard[data-category="Notebook"]', { hasText: KERNEL }).waitFor({ timeout: within(20_000) });
      f.cards = await cards.evaluateAll((els) =>
        els.map((e) => {
          const img = e.querySelector('img');
          return {
            category: e.getAttribute('data-category'),
            label: e.querySelector('.jp-LauncherCard-label')?.textContent?.trim(),
            logo: img ? img.getAttribute('src') : null,
            logo_loaded: img ? img.complete && img.naturalWidth > 0 : false,
          };
        }),
      );
      const card = f.cards.find((c) => c.category === 'Notebook' && c.label === KERNEL);
      if (card && card.logo) {
        const resp = await page.request.get(`${BASE}${card.logo}?token=${encodeURIComponent(TOKEN)}`);
        f.logo_status = resp.status();
        f.logo_content_type = resp.headers()['content-type'];
        f.logo_bytes = (await resp.body()).length;
      }
      await shot('01-launcher');
    });

    // 2. A new notebook from the launcher card runs Rust, highlighted.
    await step('new_notebook', async (f) => {
      await page.locator('.jp-LauncherCard[data-category="Notebook"]', { hasText: KERNEL }).click({ timeout: within(20_000) });
      await usePanel(/Untitled\d*\.ipynb/);
      await waitKernelIdle();
      f.toolbar_kernel = (await panel().locator('.jp-Toolbar-kernelName').textContent()).trim();
      f.status_bar = (await page.locator('.jp-StatusBar-Widget').innerText()).replace(/\s+/g, ' ');
      f.notebook_title = (await page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel').textContent())?.trim();
      f.code_cells = (await cellSources()).filter((x) => x !== null).length;
      const cell = await runCell(0, 'let answer = 21;\nprintln!("hello from {}", "slurmbook");\nanswer * 2');
      f.outputs = (await outputsOf(cell)).map(({ mime, text }) => ({ mime, text }));
      f.output_prompts = await cell.locator('.jp-OutputPrompt').allInnerTexts();
      const editor = cell.locator('.jp-InputArea-editor .cm-content');
      f.editor_language = await editor.getAttribute('data-language');
      // Highlighting: the `let` keyword and the number are styled tokens whose
      // colour differs from the line's own colour.
      f.highlight = await editor.evaluate((el) => {
        const line = el.querySelector('.cm-line');
        const base = getComputedStyle(line).color;
        const tokens = [...line.querySelectorAll('span')].map((s) => ({
          text: s.textContent,
          color: getComputedStyle(s).color,
          weight: getComputedStyle(s).fontWeight,
        }));
        return { base, tokens };
      });
    });

    // 3. Completion: `%` + Tab lists the magics, `%mat` + Tab offers %materialize;
    //    a Rust variable completes too.
    await step('completion', async (f) => {
      const i = 1;
      const cell = cellAt(i);
      await cell.locator('.jp-InputArea-editor .cm-content').click({ timeout: within(10_000) });
      const completer = page.locator('.jp-Completer:not(.lm-mod-hidden)');
      const items = () => completer.locator('.jp-Completer-item .jp-Completer-match').allInnerTexts();

      await page.keyboard.type('%');
      await page.keyboard.press('Tab');
      await completer.locator('.jp-Completer-item').first().waitFor({ timeout: within(20_000) });
      f.percent_items = await items();
      await shot('02-completion');
      await page.keyboard.press('Escape');

      await page.keyboard.type('mat');
      await page.keyboard.press('Tab');
      // One candidate: JupyterLab either shows it or inserts it right away.
      const deadline = Date.now() + within(20_000);
      for (;;) {
        f.mat_items = await completer.locator('.jp-Completer-item .jp-Completer-match').allInnerTexts().catch(() => []);
        f.mat_text = await cell.locator('.jp-InputArea-editor .cm-content').textContent();
        if (f.mat_items.length || f.mat_text !== '%mat' || Date.now() > deadline) break;
        await page.waitForTimeout(200);
      }
      if (f.mat_items.length) {
        await page.keyboard.press('Enter');
        await page.waitForTimeout(300);
      }
      f.mat_accepted = await cell.locator('.jp-InputArea-editor .cm-content').textContent();

      // Rust: `answer` from the first cell.
      await page.keyboard.press('ControlOrMeta+a');
      await page.keyboard.insertText('answ');
      await page.keyboard.press('Tab');
      const deadline2 = Date.now() + within(30_000);
      for (;;) {
        f.rust_items = await completer.locator('.jp-Completer-item .jp-Completer-match').allInnerTexts().catch(() => []);
        f.rust_text = await cell.locator('.jp-InputArea-editor .cm-content').textContent();
        if (f.rust_items.length || f.rust_text !== 'answ' || Date.now() > deadline2) break;
        await page.waitForTimeout(200);
      }
      await page.keyboard.press('Escape');
    });

    // 4. %lsmagic and %help open as pager content.
    await step('pager', async (f) => {
      let cell = await runCell(1, '%lsmagic');
      f.lsmagic = (await outputsOf(cell)).map(({ mime, text }) => ({ mime, text }));
      f.lsmagic_prompts = await cell.locator('.jp-OutputPrompt').allInnerTexts();
      cell = await runCell(2, '%help materialize');
      f.help = (await outputsOf(cell)).map(({ mime, text }) => ({ mime, text }));
      f.help_prompts = await cell.locator('.jp-OutputPrompt').allInnerTexts();
      await cellAt(1).scrollIntoViewIfNeeded();
      await shot('03-pager');
    });

    // 5. Errors are readable: a compile error and an unknown magic.
    await step('errors', async (f) => {
      let cell = await runCell(3, 'let n: u32 = "not a number";');
      f.compile_error = (await outputsOf(cell)).map(({ mime, classes, text, html }) => ({
        mime, classes, text, ansi_spans: (html.match(/class="ansi-[^"]+"/g) || []).length,
      }));
      cell = await runCell(4, '%frobnicate');
      f.magic_error = (await outputsOf(cell)).map(({ mime, text }) => ({ mime, text }));
      f.raw_ansi = await ansiIn(panel());
      await cellAt(3).evaluate((el) => el.scrollIntoView({ block: 'center' }));
      await page.waitForTimeout(300);
      await shot('04-errors');
    });

    // 6. The quickstart, freshly opened: %graph renders with JupyterLab's mermaid renderer.
    await step('graph', async (f) => {
      await page.goto(labUrl('/lab/tree/quickstart.ipynb', 'reset'), { timeout: within(60_000) });
      await usePanel('quickstart.ipynb');
      await waitKernelIdle();
      f.toolbar_kernel = (await panel().locator('.jp-Toolbar-kernelName').textContent()).trim();
      const i = await cellIndex('%graph');
      const cell = await runCell(i);
      const img = cell.locator('.jp-RenderedMermaid figure img');
      await img.waitFor({ timeout: within(30_000) });
      await page.waitForFunction(
        (el) => el && el.complete && el.naturalWidth > 0,
        await img.elementHandle(),
        { timeout: within(20_000) },
      );
      const outs = await outputsOf(cell);
      f.outputs = outs.map(({ mime, classes }) => ({ mime, classes }));
      f.mermaid = await cell.locator('.jp-RenderedMermaid').first().evaluate((el) => {
        const fig = el.querySelector('figure');
        const img = el.querySelector('figure img');
        const src = img ? img.getAttribute('src') : '';
        const svg = src.startsWith('data:image/svg+xml,') ? decodeURIComponent(src.slice('data:image/svg+xml,'.length)) : '';
        const doc = svg ? new DOMParser().parseFromString(svg, 'image/svg+xml') : null;
        const labels = doc ? [...doc.querySelectorAll('.nodeLabel, .cluster-label, text')].map((n) => n.textContent.trim()).filter(Boolean) : [];
        const r = img ? img.getBoundingClientRect() : { width: 0, height: 0 };
        return {
          warning: el.classList.contains('jp-mod-warning'),
          version: fig ? fig.dataset.jpMermaidVersion : null,
          img_natural: img ? [img.naturalWidth, img.naturalHeight] : null,
          img_shown: [Math.round(r.width), Math.round(r.height)],
          svg_chars: svg.length,
          svg_root: doc ? doc.documentElement.nodeName : null,
          svg_nodes: doc ? doc.querySelectorAll('g.node').length : 0,
          svg_edges: doc ? doc.querySelectorAll('path.flowchart-link, .edgePaths path').length : 0,
          labels,
          source: el.querySelector('pre code.mermaid')?.textContent ?? null,
        };
      });
      await cell.scrollIntoViewIfNeeded();
      await cell.evaluate((el) => el.scrollIntoView({ block: 'start' }));
      await page.waitForTimeout(300);
      await shot('05-graph');
    });

    // 7. %materialize +report on the freshly opened notebook (no asset cell
    //    was run: the kernel read the notebook named by JPY_SESSION_NAME).
    await step('materialize', async (f) => {
      const i = await cellIndex('%materialize');
      // Watch the cell's outputs while it runs.
      await cellAt(i).evaluate((cellEl) => {
        window.__sbSnaps = [];
        const snap = () => {
          const outs = [...cellEl.querySelectorAll('.jp-OutputArea-output')];
          const tables = outs.filter((o) => o.querySelector('table'));
          const rows = tables.map((t) => [...t.querySelectorAll('tbody tr')].map((tr) => [...tr.children].map((td) => td.textContent.trim())));
          const s = JSON.stringify({ n: outs.length, tables: tables.length, rows });
          if (window.__sbSnaps.at(-1)?.s !== s) window.__sbSnaps.push({ t: Math.round(performance.now()), s });
        };
        window.__sbObs = new MutationObserver(snap);
        window.__sbObs.observe(cellEl, { subtree: true, childList: true, characterData: true });
      });
      const started = await startCell(i, '%materialize +report');
      // A screenshot while it runs: the live table with an asset running.
      f.seen_running = await cellAt(i).locator('.jp-OutputArea-output table tbody tr', { hasText: 'running' }).first()
        .waitFor({ timeout: within(120_000) }).then(() => true, (e) => e.message.split('\n')[0]);
      if (f.seen_running === true) {
        await cellAt(i).evaluate((el) => el.scrollIntoView({ block: 'start' }));
        await shot('06-materialize-running');
      }
      const cell = await waitCell(started, 150_000);
      const snaps = await page.evaluate(() => { window.__sbObs.disconnect(); return window.__sbSnaps.map((x) => ({ t: x.t, ...JSON.parse(x.s) })); });
      f.snapshots = snaps.length;
      f.max_tables = Math.max(0, ...snaps.map((s) => s.tables));
      // For each asset, the sequence of distinct states the live table showed.
      f.state_history = {};
      for (const s of snaps) {
        for (const row of (s.rows[0] || [])) {
          const [name, state] = row;
          const h = (f.state_history[name] ||= []);
          if (h.at(-1) !== state) h.push(state);
        }
      }
      const outs = await outputsOf(cell);
      f.outputs = outs.map(({ mime, text }) => ({ mime, text: text.slice(0, 2000) }));
      f.final_rows = await cell.locator('.jp-OutputArea-output table tbody tr').evaluateAll((trs) =>
        trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
      f.stream = outs.filter((o) => o.mime === 'application/vnd.jupyter.stdout').map((o) => o.text).join('\n');
      await cell.evaluate((el) => el.scrollIntoView({ block: 'start' }));
      await page.waitForTimeout(300);
      await shot('07-materialize-done');
    });

    // 8. %assets is a table; the materialized value is in the session.
    await step('assets', async (f) => {
      let cell = await runCell(await cellIndex('%assets'), undefined, 60_000);
      f.outputs = (await outputsOf(cell)).map(({ mime, text }) => ({ mime, text: text.slice(0, 2000) }));
      f.rows = await cell.locator('.jp-OutputArea-output table tbody tr').evaluateAll((trs) =>
        trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
      f.headers = await cell.locator('.jp-OutputArea-output table thead th').allInnerTexts();
      await cell.evaluate((el) => el.scrollIntoView({ block: 'start' }));
      await page.waitForTimeout(300);
      await shot('08-assets');
      cell = await runCell(await cellIndex('report'), undefined, 60_000);
      f.report = (await outputsOf(cell)).map(({ mime, text }) => ({ mime, text }));
      // The graph again: now every asset is materialized.
      cell = await runCell(await cellIndex('%graph'), undefined, 60_000);
      await page.waitForFunction(
        (el) => { const img = el.querySelector('.jp-RenderedMermaid figure img'); return img && img.complete && img.naturalWidth > 0; },
        await cell.elementHandle(), { timeout: within(20_000) });
      f.graph_source_after = await cell.locator('.jp-RenderedMermaid pre code.mermaid').textContent();
      f.raw_ansi = await ansiIn(panel());
      await cell.evaluate((el) => el.scrollIntoView({ block: 'start' }));
      await page.waitForTimeout(300);
      await shot('09-graph-after');
      // The run's timeline (%runs RUN): JupyterLab shows the SVG as an image.
      cell = await runCell(await cellIndex('%assets'), '%runs 1', 60_000);
      const img = cell.locator('.jp-RenderedSVG img, .jp-RenderedImage img').first();
      await img.waitFor({ timeout: within(20_000) });
      f.timeline_src = await img.getAttribute('src');
      f.timeline_text = (await outputsOf(cell)).map(({ text }) => text).join('\n').slice(0, 4000);
      await cell.evaluate((el) => el.scrollIntoView({ block: 'start' }));
      await page.waitForTimeout(300);
      await shot('10-run-timeline');
    });

    // 9. hello.ipynb, Run All Cells from the menu: output, rich HTML and a
    //    readable error (the cell is tagged raises-exception).
    await step('hello', async (f) => {
      await page.goto(labUrl('/lab/tree/hello.ipynb', 'reset'), { timeout: within(60_000) });
      await usePanel('hello.ipynb');
      await waitKernelIdle();
      const srcs = await cellSources();
      f.sources = srcs;
      const first = srcs.findIndex((x) => x !== null);
      // Select a cell so that this notebook is the current one for the menu's
      // commands, then Run > Run All Cells (retried once if nothing got queued).
      for (let attempt = 1; ; attempt++) {
        await cellAt(first).locator('.jp-InputArea-prompt').click();
        await page.locator('.lm-MenuBar-itemLabel', { hasText: /^Run$/ }).click();
        await page.locator('.lm-Menu-item[data-command="runmenu:run-all"]:not(.lm-mod-disabled)').click({ timeout: within(10_000) });
        const started = await page.waitForFunction(
          (el) => /\[(\*|\d+)\]/.test(el.textContent), await cellAt(first).locator('.jp-InputArea-prompt').elementHandle(),
          { timeout: within(10_000) }).then(() => true, () => false);
        f.run_all_attempts = attempt;
        if (started) break;
        if (attempt >= 2) throw new Error('Run > Run All Cells did not start the notebook');
        await page.keyboard.press('Escape');
      }
      // Done when the first code cell has its count and no cell is queued or
      // running ([*]) for a second (Run All stops at an error unless the cell
      // is tagged raises-exception; then the rest stay [ ]).
      const deadline = Date.now() + within(120_000);
      let quietSince = null;
      for (;;) {
        const counted = /\[\d+\]/.test(await promptOf(cellAt(first)));
        const pending = await panel().locator('.jp-InputArea-prompt', { hasText: '[*]' }).count();
        if (counted && !pending) {
          quietSince ??= Date.now();
          if (Date.now() - quietSince > 1_000) break;
        } else {
          quietSince = null;
        }
        if (Date.now() > deadline) throw new Error(`Run All did not finish in time (${pending} cells still pending)`);
        await page.waitForTimeout(200);
      }
      f.cells = [];
      for (let i = 0; i < srcs.length; i++) {
        if (srcs[i] === null) continue;
        const cell = cellAt(i);
        f.cells.push({
          source: srcs[i],
          prompt: await promptOf(cell),
          outputs: (await outputsOf(cell)).map(({ mime, text, html }) => ({ mime, text, bold: /<b>/.test(html) })),
          output_prompts: await cell.locator('.jp-OutputPrompt').allInnerTexts(),
        });
      }
      f.raw_ansi = await ansiIn(panel());
      await shot('10-hello');
    });
  } finally {
    save();
    await browser.close().catch(() => {});
  }
}

const watchdog = setTimeout(() => {
  result.fatal = `the browser test exceeded its budget of ${BUDGET_MS + 30_000} ms and was stopped`;
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
