// Opens the host's /console in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) the way an operator would, and prints what it saw as one JSON line.
//
//   node console_check.js <host url> <admin key> <screenshot folder>
//
// Steps: the page without a key and with a wrong one (refused, with a Basic challenge);
// with the key (as the Basic password a browser prompt sends): what each section shows,
// the charts' data, every URL the page requested, the layout across two refreshes, a
// narrow window; then the limits section drawn from hand-written /admin/limits answers.
"use strict";
const { chromium } = require("playwright-core");

const [url, key, shots] = process.argv.slice(2);
const FLAGS = [
  "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

async function refused(browser, credentials) {
  const context = await browser.newContext(credentials ? { httpCredentials: credentials } : {});
  const page = await context.newPage();
  // What the host answered, seen on the wire: Chromium may turn a refusal it cannot
  // answer (no prompt in headless mode) into a navigation error.
  const answers = [];
  page.on("response", (r) => answers.push({ status: r.status(), challenge: r.headers()["www-authenticate"] || null }));
  let error = null;
  let shown = null;
  try {
    shown = (await page.goto(`${url}/console`)).status();
  } catch (e) {
    error = String(e.message).split("\n")[0];
  }
  await context.close();
  return { answers, shown, error };
}

// Waits for the page's refresh counter to pass `n`.
async function refreshed(page, n) {
  await page.waitForFunction((n) => Number(document.body.dataset.refreshes || 0) >= n, n, { timeout: 30000 });
}

async function observe(page) {
  return page.evaluate(() => {
    const cells = (tr) => [...tr.children].map((c) => c.textContent.trim());
    const rows = (id) => [...document.querySelectorAll(`#${id} tr`)];
    const chart = (id) => {
      const figure = document.getElementById(id);
      return {
        points: Number(figure.dataset.points || 0),
        summary: figure.querySelector(".summary").textContent,
        canvas: !!figure.querySelector("canvas"),
      };
    };
    const box = (el) => { const r = el.getBoundingClientRect(); return [Math.round(r.top), Math.round(r.height)]; };
    return {
      status: document.getElementById("status").textContent,
      notes: [...document.querySelectorAll("[data-note]")].map((n) => n.textContent).filter((t) => t),
      providers: rows("provider-rows").map((tr) => ({ name: tr.dataset.provider, cells: cells(tr) })),
      aliases: rows("alias-rows").map(cells),
      reloads: rows("reload-rows").map((tr) => ({ trigger: tr.dataset.trigger, failed: Number(tr.dataset.failed), cells: cells(tr) })),
      charts: Object.fromEntries(["chart-requests", "chart-errors", "chart-latency", "chart-cost"].map((id) => [id, chart(id)])),
      traffic_requests: document.getElementById("traffic-requests").textContent,
      cost_total: { text: document.getElementById("usage-cost-total").textContent, usd: document.getElementById("usage-cost-total").dataset.usd },
      usage_providers: rows("usage-provider-rows").map((tr) => ({ key: tr.dataset.key, cells: cells(tr), usd: tr.querySelector("[data-usd]") && tr.querySelector("[data-usd]").dataset.usd })),
      series: rows("series-rows").map((tr) => ({ key: tr.dataset.key, usd: tr.querySelector("[data-usd]") && tr.querySelector("[data-usd]").dataset.usd })),
      budgets: rows("budget-rows").map(cells),
      limits_shown: !document.getElementById("limits-block").hidden,
      limits: rows("limit-rows").map(cells),
      layout: [...document.querySelectorAll("section, .chart .plot")].map(box),
      page_width: document.documentElement.scrollWidth,
    };
  });
}

(async () => {
  const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: FLAGS });
  const out = {};
  try {
    out.without_key = await refused(browser, null);
    out.wrong_key = await refused(browser, { username: "operator", password: "not-the-key" });

    const context = await browser.newContext({
      httpCredentials: { username: "operator", password: key },
      viewport: { width: 1280, height: 900 },
    });
    const requested = [];
    context.on("request", (request) => requested.push(request.url()));
    const errors = [];
    const page = await context.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => {
      // This host has no /admin/limits: its one 404 is expected.
      if (m.type() === "error" && !m.location().url.endsWith("/admin/limits")) errors.push(`${m.text()} (${m.location().url})`);
    });
    const response = await page.goto(`${url}/console`);
    out.status = response.status();
    out.policy = response.headers()["content-security-policy"] || null;
    await page.selectOption("#refresh", "2");
    await refreshed(page, 2);
    out.first = await observe(page);
    await refreshed(page, 3);
    out.second = await observe(page);
    await page.screenshot({ path: `${shots}/console.png`, fullPage: true });

    await page.setViewportSize({ width: 360, height: 800 });
    await refreshed(page, 4);
    out.narrow = await observe(page);
    await page.screenshot({ path: `${shots}/console-narrow.png`, fullPage: true });
    out.requested = requested;
    out.errors = errors;
    await context.close();

    // The limits section, from answers written by hand (the host has no /admin/limits).
    const limited = await browser.newContext({ httpCredentials: { username: "operator", password: key } });
    const limitsPage = await limited.newPage();
    let answer = null;
    await limitsPage.route("**/admin/limits", (route) => route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(answer) }));
    answer = {
      backend: "redis", redis: { healthy: true, outages: 2 },
      limits: [
        { scope: "client", name: "team-a", window_secs: 60, requests: { limit: 60, used: 3, remaining: 57, reset_secs: 42 }, tokens: null, concurrent: { limit: 4, in_flight: 1 } },
      ],
    };
    await limitsPage.goto(`${url}/console`);
    await refreshed(limitsPage, 1);
    out.limits_listed = await observe(limitsPage);
    answer = { backend: "memory", redis: null, limits: [] };
    await limitsPage.reload();
    await refreshed(limitsPage, 1);
    out.limits_empty = await observe(limitsPage);
    await limited.close();
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
