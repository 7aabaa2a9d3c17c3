#!/usr/bin/env node
/*
 * Opens the dashboard in Debian's headless chromium (driven by
 * playwright-core) and prints, as one JSON object on stdout, what a person
 * would read on it and what the page did:
 *
 *   node dashboard.js URL SCREENSHOT.png [--wait-alert NAME]... [--renders N]
 *                     [--timeout-ms MS] [--require-key KEY] [--then-unreachable]
 *
 *   {"texts": {data-testid: text}, "classes": {data-testid: class},
 *    "alerts": [names shown in the banner], "banner_visible": bool,
 *    "stats": the /v1/stats object the page last drew, "stats_text": its text,
 *    "renders": n, "requests": [every URL the browser asked for],
 *    "console_errors": [...], "screenshot": path}
 *
 * It waits until the page has drawn N answers of /v1/stats (default 1)
 * and every --wait-alert is listed in the alert banner. Used by
 * tests/integration/test_dashboard.py; installed by scripts/deps.sh.
 *
 * --require-key KEY: the gateway runs with API keys (--api-keys-file) and
 * KEY is one with the read scope, so /v1/stats answers 401 without it; the
 * script waits for the page to ask for a key, types KEY, and then reloads the page
 * (the tab's sessionStorage keeps it). Adds "key": {"asked", "stored",
 * "sent_after", "asked_after_reload", "renders_after_reload"}.
 *
 * --then-unreachable: after printing the object above, reads one line from
 * stdin (the test stops the gateway, then writes it), waits for the page
 * to say the gateway is unreachable, and prints a second object like the
 * first (with its own screenshot, SCREENSHOT-unreachable.png).
 */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

function parseArgs(argv) {
  const out = { url: null, shot: null, alerts: [], renders: 1, timeout: 30000, key: null,
                unreachable: false };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--wait-alert") out.alerts.push(argv[++i]);
    else if (a === "--renders") out.renders = Number(argv[++i]);
    else if (a === "--timeout-ms") out.timeout = Number(argv[++i]);
    else if (a === "--require-key") out.key = argv[++i];
    else if (a === "--then-unreachable") out.unreachable = true;
    else rest.push(a);
  }
  [out.url, out.shot] = rest;
  if (!out.url || !out.shot) {
    process.stderr.write("usage: dashboard.js URL SCREENSHOT.png [--wait-alert NAME]... [--renders N]\n");
    process.exit(2);
  }
  return out;
}

function waitRenders(page, n, timeout) {
  return page.waitForFunction((k) => window.bistoreDashboard && window.bistoreDashboard.answered >= 1 &&
                              window.bistoreDashboard.renders >= k, n, { timeout });
}

function readLine() {
  return new Promise((resolve) => {
    let got = "";
    process.stdin.setEncoding("utf8");
    process.stdin.on("data", (d) => { got += d; if (got.includes("\n")) { process.stdin.pause(); resolve(got); } });
    process.stdin.on("end", () => resolve(got));
  });
}

/* Everything the page shows, read in one evaluation (so the figures and
 * the stats they came from belong to the same poll), and a screenshot. */
async function snapshot(page, shot) {
  const seen = await page.evaluate(() => {
    const texts = {}, classes = {};
    for (const el of document.querySelectorAll("[data-testid]")) {
      const id = el.getAttribute("data-testid");
      if (id === "alert") continue;
      texts[id] = el.textContent.trim().replace(/\s+/g, " ");
      classes[id] = el.className || "";
    }
    const shown = (el) => !!el && el.getBoundingClientRect().height > 0 && getComputedStyle(el).display !== "none";
    const d = window.bistoreDashboard;
    return {
      texts, classes,
      alerts: [...document.querySelectorAll('[data-testid="alert"]')].map((e) => e.getAttribute("data-alert-name")),
      alert_texts: [...document.querySelectorAll('[data-testid="alert"]')].map((e) => e.textContent),
      banner_visible: shown(document.querySelector('[data-testid="alerts-banner"]')),
      unreachable_visible: shown(document.querySelector('[data-testid="unreachable-banner"]')),
      title: document.title,
      stats: d.stats, stats_text: d.statsText, renders: d.renders, polls: d.polls, last_error: d.lastError,
    };
  });
  await page.screenshot({ path: shot, fullPage: true });
  seen.screenshot = path.resolve(shot);
  return seen;
}

async function main() {
  const opt = parseArgs(process.argv.slice(2));
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "bistore-chromium-"));
  const requests = [];
  const consoleErrors = [];
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1600, height: 1000 },
      deviceScaleFactor: 1,
      colorScheme: "dark",
      timeout: opt.timeout,
    });
    context.on("request", (r) => requests.push(r.url()));
    const page = context.pages()[0] || await context.newPage();
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    const statsAuth = [];
    page.on("request", (r) => {
      if (new URL(r.url()).pathname === "/v1/stats") statsAuth.push(r.headers()["authorization"] || null);
    });
    await page.goto(opt.url, { waitUntil: "load", timeout: opt.timeout });
    let key = null;
    if (opt.key) {
      key = {};
      await page.locator('[data-testid="auth-key"]').waitFor({ state: "visible", timeout: opt.timeout });
      key.asked = true;
      const before = statsAuth.length;
      await page.locator('[data-testid="auth-key"]').fill(opt.key);
      await page.locator('[data-testid="auth-submit"]').click();
      await waitRenders(page, 1, opt.timeout);
      key.stored = await page.evaluate(() => sessionStorage.getItem("bistore.apiKey"));
      key.sent_after = statsAuth.slice(before);
      await page.reload({ waitUntil: "load", timeout: opt.timeout });
      await waitRenders(page, 1, opt.timeout);
      key.asked_after_reload = await page.locator('[data-testid="auth-key"]').isVisible();
      key.renders_after_reload = await page.evaluate(() => window.bistoreDashboard.renders);
    }
    await waitRenders(page, opt.renders, opt.timeout);
    for (const name of opt.alerts) {
      await page.locator(`[data-testid="alert"][data-alert-name="${name}"]`)
        .waitFor({ state: "visible", timeout: opt.timeout });
    }
    const seen = await snapshot(page, opt.shot);
    if (key) seen.key = key;
    seen.requests = requests.slice();
    seen.console_errors = consoleErrors.slice();
    process.stdout.write(JSON.stringify(seen) + "\n");
    if (opt.unreachable) {
      await readLine();
      await page.waitForFunction(() => window.bistoreDashboard.lastError !== null, null, { timeout: opt.timeout });
      const shot = opt.shot.replace(/\.png$/, "") + "-unreachable.png";
      const later = await snapshot(page, shot);
      later.requests = requests.slice();
      later.console_errors = consoleErrors.slice();
      process.stdout.write(JSON.stringify(later) + "\n");
    }
  } finally {
    if (context) await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => {
  process.stderr.write(String(e && e.stack || e) + "\n");
  process.exit(1);
});
