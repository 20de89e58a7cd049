#!/usr/bin/env node
// Drives the upload page in headless Chromium for spec/e2e/browser_spec.lua.
//
//   node spec/support/browser_upload.js CONFIG.json
//
// CONFIG: {page, chromium, userDataDir, screenshot, timeoutMs,
//          uploads: [{file, method: "auto"|"PUT", expect: "PROCESSED"|"FAILED"}]}
// Loads the page on a phone-sized viewport, checks that the file input is
// labelled and reached with the keyboard, uploads each file in turn with the
// chosen method and waits until its row settles, then writes a full-page
// screenshot. Prints one JSON object: what each row shows, the requests
// the page sent to other origins, and console errors. The Lua spec judges.
'use strict';

const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '../..');
const { chromium } = require(path.join(root, 'node_modules/playwright-core'));

async function main() {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const out = { rows: [], crossOrigin: [], consoleErrors: [], keyboard: {}, viewport: null };
  const context = await chromium.launchPersistentContext(cfg.userDataDir, {
    executablePath: cfg.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 1,
    isMobile: false,
    hasTouch: true,
    timeout: 30000,
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    const pageOrigin = new URL(cfg.page).origin;
    page.on('console', m => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
    page.on('pageerror', e => out.consoleErrors.push(String(e)));
    page.on('request', r => {
      const u = new URL(r.url());
      if (u.origin !== pageOrigin && (u.protocol === 'http:' || u.protocol === 'https:')) {
        out.crossOrigin.push({ method: r.method(), origin: u.origin, path: u.pathname });
      }
    });

    const res = await page.goto(cfg.page, { waitUntil: 'load', timeout: cfg.timeoutMs });
    out.status = res.status();
    out.title = await page.title();
    out.pageOrigin = pageOrigin;

    // Keyboard: the first Tab reaches the labelled file input.
    await page.keyboard.press('Tab');
    out.keyboard.firstTab = await page.evaluate(() => document.activeElement && document.activeElement.id);
    out.keyboard.inputLabel = await page.evaluate(() => {
      const i = document.getElementById('files');
      return i && i.labels && i.labels.length ? i.labels[0].textContent.trim() : null;
    });
    out.keyboard.methodLabel = await page.evaluate(() => {
      const s = document.getElementById('method');
      return s && s.labels && s.labels.length ? s.labels[0].textContent.trim() : null;
    });
    // Nothing wider than the phone's screen.
    out.viewport = await page.evaluate(() => ({
      width: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
    }));

    for (let i = 0; i < cfg.uploads.length; i++) {
      const u = cfg.uploads[i];
      await page.selectOption('#method', u.method);
      await page.setInputFiles('#files', u.file);
      const row = page.locator('#uploads > li').first();
      await row.waitFor({ timeout: cfg.timeoutMs });
      const rowId = await row.getAttribute('id');
      const sel = '#' + rowId;
      await page.waitForFunction(s => {
        const li = document.querySelector(s);
        if (!li || (li.dataset.status !== 'PROCESSED' && li.dataset.status !== 'FAILED')) return false;
        if (li.dataset.status === 'FAILED') return true;
        const img = li.querySelector('img');
        return img && img.complete;
      }, sel, { timeout: cfg.timeoutMs, polling: 200 });
      out.rows.push(await page.evaluate(s => {
        const li = document.querySelector(s);
        const img = li.querySelector('img');
        const bar = li.querySelector('progress');
        return {
          file: li.querySelector('.name').textContent,
          status: li.dataset.status,
          method: li.dataset.method || null,
          imageId: li.dataset.imageId || null,
          text: li.querySelector('.status').textContent.trim(),
          progress: bar ? bar.value : null,
          caption: li.querySelector('figcaption') ? li.querySelector('figcaption').textContent.trim() : null,
          imageSrcOrigin: img ? new URL(img.src).origin : null,
          naturalWidth: img ? img.naturalWidth : 0,
          naturalHeight: img ? img.naturalHeight : 0,
        };
      }, sel));
    }
    fs.mkdirSync(path.dirname(cfg.screenshot), { recursive: true });
    await page.screenshot({ path: cfg.screenshot, fullPage: true });
  } finally {
    await context.close();
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch(err => {
  process.stderr.write('browser_upload: ' + (err.stack || err) + '\n');
  process.exit(1);
});
