#!/usr/bin/env node
/*
 * Opens the dashboard in Debian's headless chromium (driven by
 * playwright-core) and prints, as one JSON object on stdout, what a person
 * would read on it and what the page did:
 *
 *   node dashboard.js URL SCREENSHOT.png [--wait-alert NAME]... [--renders N]
 *                     [--timeout-ms MS]
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
 */
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

function parseArgs(argv) {
  const out = { url: null, shot: null, alerts: [], renders: 1, timeout: 30000 };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--wait-alert") out.alerts.push(argv[++i]);
    else if (a === "--renders") out.renders = Number(argv[++i]);
    else if (a === "--timeout-ms") out.timeout = Number(argv[++i]);
    else rest.push(a);
  }
  [out.url, out.shot] = rest;
  if (!out.url || !out.shot) {
    process.stderr.write("usage: dashboard.js URL SCREENSHOT.png [--wait-alert NAME]... [--renders N]\n");
    process.exit(2);
  }
  return out;
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
    await page.goto(opt.url, { waitUntil: "load", timeout: opt.timeout });
    await page.waitForFunction((n) => window.bistoreDashboard && window.bistoreDashboard.answered >= 1 &&
                               window.bistoreDashboard.renders >= n,
                               opt.renders, { timeout: opt.timeout });
    for (const name of opt.alerts) {
      await page.locator(`[data-testid="alert"][data-alert-name="${name}"]`)
        .waitFor({ state: "visible", timeout: opt.timeout });
    }
    // Read everything in one evaluation, so the figures and the stats they
    // came from belong to the same poll.
    const seen = await page.evaluate(() => {
      const texts = {}, classes = {};
      for (const el of document.querySelectorAll("[data-testid]")) {
        const id = el.getAttribute("data-testid");
        if (id === "alert") continue;
        texts[id] = el.textContent.trim();
        classes[id] = el.className || "";
      }
      const banner = document.querySelector('[data-testid="alerts-banner"]');
      const d = window.bistoreDashboard;
      return {
        texts, classes,
        alerts: [...document.querySelectorAll('[data-testid="alert"]')].map((e) => e.getAttribute("data-alert-name")),
        alert_texts: [...document.querySelectorAll('[data-testid="alert"]')].map((e) => e.textContent),
        banner_visible: !!banner && banner.getBoundingClientRect().height > 0 && getComputedStyle(banner).display !== "none",
        stats: d.stats, stats_text: d.statsText, renders: d.renders, polls: d.polls,
      };
    });
    await page.screenshot({ path: opt.shot, fullPage: true });
    seen.requests = requests;
    seen.console_errors = consoleErrors;
    seen.screenshot = path.resolve(opt.shot);
    process.stdout.write(JSON.stringify(seen) + "\n");
  } finally {
    if (context) await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(String(e && e.stack || e) + "\n");
  process.exit(1);
});
