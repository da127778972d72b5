// provider-host console: draws what the /admin/* JSON endpoints answer, every few
// seconds. No framework and no build step; charts by uPlot (vendored, same origin).
// Every state is written as a word (colour and symbols only repeat it), and every chart
// has a text summary under it.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  // Line styles differ by dash as well as colour, so series are told apart without colour.
  const STYLES = [
    { stroke: "#0969da", dash: [] },
    { stroke: "#b42318", dash: [6, 3] },
    { stroke: "#1a7f37", dash: [2, 2] },
    { stroke: "#8250df", dash: [8, 3, 2, 3] },
    { stroke: "#bc4c00", dash: [1, 3] },
    { stroke: "#57606a", dash: [10, 4] },
    { stroke: "#0550ae", dash: [4, 4, 1, 4] },
    { stroke: "#953800", dash: [12, 2] },
  ];
  const MAX_KEYS = 8; // usage chart: the largest keys, the rest as "other"

  async function get(path) {
    const response = await fetch(path, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { accept: "application/json" },
    });
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && body.error && body.error.message) message += `: ${body.error.message}`;
      } catch (_) { /* not JSON */ }
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return response.json();
  }

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const dash = "–";
  const utc = (secs) =>
    secs ? new Date(secs * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : dash;
  const clock = (secs) => utc(secs).slice(11, 19);
  const usd = (v) => `$${Number(v || 0).toFixed(6)}`;
  const int = (v) => Number(v || 0).toLocaleString("en-US");
  const ms = (v) => (v === null || v === undefined ? dash : v < 10 ? `${v.toFixed(2)} ms` : `${Math.round(v)} ms`);
  const list = (names) => (names && names.length ? names.join(", ") : dash);

  function note(section, message) {
    $(section).querySelector("[data-note]").textContent = message || "";
  }

  function state(word, tone, symbol) {
    return el("span", { class: `state ${tone}` }, `${symbol} ${word}`);
  }

  function row(...cells) {
    return el("tr", {}, ...cells.map((c) => (c instanceof Node && c.nodeName === "TD" ? c : el("td", {}, c))));
  }

  function num(value, attrs) {
    return el("td", Object.assign({ class: "num" }, attrs || {}), value);
  }

  function empty(tbody, columns, message) {
    tbody.replaceChildren(el("tr", {}, el("td", { colspan: columns, class: "empty" }, message)));
  }

  // ---- providers ------------------------------------------------------------------

  function providerState(p) {
    if (p.faulted) return state("faulted", "bad", "✕");
    switch (p.state) {
      case "ready": return state("ready", "good", "✓");
      case "failed": return state("failed", "bad", "✕");
      case "unavailable": return state("unavailable", "warn", "!");
      default: return state(p.state, "warn", "–");
    }
  }

  function lastError(p) {
    const parts = [];
    if (p.reason) parts.push(p.reason);
    if (p.faulted) parts.push(`faulted: ${p.faulted}`);
    if (p.last_reload_error) parts.push(`last reload refused: ${p.last_reload_error}`);
    const e = p.last_error;
    if (e) parts.push(`${e.kind}${e.status ? ` (${e.status})` : ""} on ${e.model} at ${utc(e.at)}: ${e.message}`);
    return parts.length ? parts.join("; ") : dash;
  }

  function renderProviders(data) {
    const rows = data.providers.map((p) => {
      const plugin = p.plugin ? `${p.plugin.name} ${p.plugin.version}` : dash;
      const sha = p.sha256 ? el("span", { class: "mono", title: p.sha256 }, p.sha256.slice(0, 12)) : dash;
      const breaker = p.circuit === "closed" ? "closed" : state(p.circuit.replace("_", " "), "bad", "!");
      return el("tr", { "data-provider": p.name },
        el("th", { scope: "row" }, p.name), el("td", {}, providerState(p)), el("td", {}, plugin),
        el("td", {}, p.plugin ? p.plugin.sdk_version : dash), el("td", {}, sha),
        num(p.generation), el("td", {}, utc(p.loaded_at)), el("td", {}, p.isolation || dash),
        el("td", {}, breaker), el("td", { class: "reason" }, lastError(p)));
    });
    if (rows.length) $("provider-rows").replaceChildren(...rows);
    else empty($("provider-rows"), 10, "No provider is configured.");
    const aliases = Object.entries(data.aliases || {}).map(([alias, targets]) =>
      row(el("th", { scope: "row" }, alias), targets.join(" → ")));
    if (aliases.length) $("alias-rows").replaceChildren(...aliases);
    else empty($("alias-rows"), 2, "No aliases (`models` in the config).");
    return data.generation;
  }

  // ---- reloads --------------------------------------------------------------------

  function renderReloads(data) {
    const rows = data.reloads.map((r) => {
      const failed = (r.failed || []).map(([name, reason]) => `${name}: ${reason}`);
      if (r.config_error) failed.unshift(`config refused: ${r.config_error}`);
      const result = failed.length ? state("failed", "bad", "✕") : state("ok", "good", "✓");
      return el("tr", { "data-trigger": r.trigger, "data-failed": failed.length },
        el("td", {}, utc(r.at)), el("td", {}, r.trigger), el("td", {}, result), num(r.generation),
        el("td", {}, list(r.added)), el("td", {}, list(r.reloaded)), el("td", {}, list(r.removed)),
        el("td", { class: "reason" }, failed.length ? failed.join("; ") : dash));
    });
    if (rows.length) $("reload-rows").replaceChildren(...rows);
    else empty($("reload-rows"), 8, "No reload yet.");
  }

  // ---- charts ---------------------------------------------------------------------

  const charts = new Map(); // figure id -> { plot, signature }
  const xRanges = new Map(); // figure id -> [from, to], read by the x scale on each draw

  // Tick labels: small dollar amounts keep two significant digits instead of reading "0".
  const money = (v) => (v === 0 ? "$0" : `$${Number(v.toPrecision(2))}`);

  function chartWidth(figure) {
    return Math.max(240, figure.querySelector(".plot").clientWidth || 300);
  }

  // Draws `data` ([x, ...series]) in the figure, reusing the chart while its series
  // stay the same, so a refresh only changes the lines. With `points` each value is
  // marked: a lone bucket between empty ones has no line to show it.
  function draw(id, labels, data, options) {
    const figure = $(id);
    if (options && options.range) xRanges.set(id, options.range);
    const signature = labels.join("\u0000") + JSON.stringify(Object.assign({}, options, { range: null }));
    const existing = charts.get(id);
    if (existing && existing.signature === signature) {
      existing.plot.setData(data);
      return;
    }
    if (existing) existing.plot.destroy();
    const series = [{ value: (u, v) => (v === null ? dash : utc(v)) }].concat(labels.map((label, i) => ({
      label,
      stroke: STYLES[i % STYLES.length].stroke,
      dash: STYLES[i % STYLES.length].dash,
      width: 1.5,
      points: { show: (options && options.points) || false, size: 5 },
      spanGaps: false,
    })));
    const plot = new uPlot({
      width: chartWidth(figure),
      height: 190,
      series,
      scales: {
        x: { time: true, range: (u, min, max) => xRanges.get(id) || [min, max] },
        y: options && options.log ? { distr: 3 } : { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { values: (u, ticks) => ticks.map((t) => (options && options.days ? utc(t).slice(0, 10) : clock(t).slice(0, 5))) },
        Object.assign({ size: options && options.money ? 84 : 64 }, options && options.money ? { values: (u, ticks) => ticks.map(money) } : {}),
      ],
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    }, data, figure.querySelector(".plot"));
    charts.set(id, { plot, signature });
  }

  function summary(id, text, points) {
    const figure = $(id);
    figure.querySelector(".summary").textContent = text;
    figure.dataset.points = String(points);
  }

  window.addEventListener("resize", () => {
    for (const [id, chart] of charts) chart.plot.setSize({ width: chartWidth($(id)), height: 190 });
  });

  // ---- traffic --------------------------------------------------------------------

  function figure(label, value, id) {
    return el("div", {}, el("dt", {}, label), el("dd", { id }, value));
  }

  function lastValue(values) {
    for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null) return values[i];
    return null;
  }

  function renderTraffic(t) {
    const per = t.bucket_secs;
    const total = t.requests.reduce((a, b) => a + b, 0);
    const errors = t.errors.reduce((a, b) => a + b, 0);
    const rate = total ? (100 * errors) / total : 0;
    const recent = t.requests.slice(-6).reduce((a, b) => a + b, 0);
    $("traffic-figures").replaceChildren(
      figure("Requests, last hour", int(total), "traffic-requests"),
      figure("Errors, last hour", `${int(errors)} (${rate.toFixed(1)}%)`, "traffic-errors"),
      figure("Requests/s, last minute", (recent / 60).toFixed(2)),
      figure("Latency p50 / p99, latest", `${ms(lastValue(t.latency_p50_ms))} / ${ms(lastValue(t.latency_p99_ms))}`),
      figure("Host overhead p50 / p99", `${ms(lastValue(t.overhead_p50_ms))} / ${ms(lastValue(t.overhead_p99_ms))}`),
    );
    const perSecond = (values) => values.map((v) => v / per);
    draw("chart-requests", ["requests/s", "errors/s"], [t.start, perSecond(t.requests), perSecond(t.errors)]);
    summary("chart-requests", `${int(total)} requests and ${int(errors)} errors in the last hour, in ${per}-second buckets.`,
      t.requests.filter((v) => v > 0).length);

    const kinds = Object.keys(t.errors_by_kind);
    if (kinds.length) {
      draw("chart-errors", kinds, [t.start, ...kinds.map((k) => perSecond(t.errors_by_kind[k]))]);
      const counts = kinds.map((k) => `${k} ${t.errors_by_kind[k].reduce((a, b) => a + b, 0)}`);
      summary("chart-errors", `Errors by kind in the last hour: ${counts.join(", ")}.`,
        t.errors.filter((v) => v > 0).length);
    } else {
      draw("chart-errors", ["errors/s"], [t.start, perSecond(t.errors)]);
      summary("chart-errors", "No errors in the last hour.", 0);
    }

    draw("chart-latency", ["latency p50", "latency p99", "overhead p50", "overhead p99"],
      [t.start, t.latency_p50_ms, t.latency_p99_ms, t.overhead_p50_ms, t.overhead_p99_ms], { log: true, points: true });
    summary("chart-latency", `Latest: latency p50 ${ms(lastValue(t.latency_p50_ms))}, p99 ${ms(lastValue(t.latency_p99_ms))}; host overhead p50 ${ms(lastValue(t.overhead_p50_ms))}, p99 ${ms(lastValue(t.overhead_p99_ms))}.`,
      t.latency_p50_ms.filter((v) => v !== null).length);
  }

  // ---- usage ----------------------------------------------------------------------

  function totalsRow(name, totals, header) {
    return el("tr", { "data-key": name },
      el(header ? "th" : "td", header ? { scope: "row" } : {}, name), num(int(totals.calls)), num(int(totals.errors)),
      num(int(totals.prompt_tokens)), num(int(totals.completion_tokens)),
      num(usd(totals.cost_usd), { "data-usd": String(totals.cost_usd || 0) }));
  }

  function renderUsage(u) {
    const t = u.totals;
    $("usage-totals").replaceChildren(
      figure("Cost since the last reset", usd(t.cost_usd), "usage-cost-total"),
      figure("Calls", int(t.calls), "usage-calls-total"),
      figure("Input / output tokens", `${int(t.prompt_tokens)} / ${int(t.completion_tokens)}`),
      figure("Counted since (UTC)", utc(u.since)),
      figure("Ledger", u.ledger.state === "ok" ? "ok" : `${u.ledger.state}${u.ledger.pending ? `, ${u.ledger.pending} waiting` : ""}`),
    );
    $("usage-cost-total").dataset.usd = String(t.cost_usd || 0);
    const providers = Object.entries(u.providers);
    if (providers.length) $("usage-provider-rows").replaceChildren(...providers.map(([name, totals]) => totalsRow(name, totals, true)));
    else empty($("usage-provider-rows"), 6, "No usage yet.");
  }

  function renderSeries(s) {
    const label = { provider: "Provider", model: "Model", client: "Client key" }[s.by];
    $("series-key").textContent = label;
    const byKey = new Map();
    const starts = [...new Set(s.rows.map((r) => r.start))].sort((a, b) => a - b);
    for (const r of s.rows) {
      const key = r.key === null ? "(no provider)" : r.key;
      const sum = byKey.get(key) || { calls: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, cost_usd: 0, at: new Map() };
      sum.calls += r.calls; sum.errors += r.errors; sum.prompt_tokens += r.prompt_tokens;
      sum.completion_tokens += r.completion_tokens; sum.cost_usd += r.cost_usd;
      sum.at.set(r.start, (sum.at.get(r.start) || 0) + r.cost_usd);
      byKey.set(key, sum);
    }
    const ranked = [...byKey.entries()].sort((a, b) => b[1].cost_usd - a[1].cost_usd || b[1].calls - a[1].calls);
    if (ranked.length) $("series-rows").replaceChildren(...ranked.map(([key, sum]) => totalsRow(key, sum, true)));
    else empty($("series-rows"), 6, "No usage in this range.");
    let shown = ranked.slice(0, MAX_KEYS);
    const rest = ranked.slice(MAX_KEYS);
    if (rest.length) {
      const other = { at: new Map() };
      for (const [, sum] of rest) for (const [start, cost] of sum.at) other.at.set(start, (other.at.get(start) || 0) + cost);
      shown = shown.concat([[`other (${rest.length})`, other]]);
    }
    const labels = shown.length ? shown.map(([key]) => key) : ["cost"];
    const columns = shown.length ? shown.map(([, sum]) => starts.map((start) => sum.at.get(start) || 0)) : [[]];
    draw("chart-cost", labels, [starts, ...columns], { points: true, money: true, days: s.bucket !== "hour", range: [s.since, s.until] });
    const spent = ranked.reduce((a, [, sum]) => a + sum.cost_usd, 0);
    summary("chart-cost", `${usd(spent)} over ${starts.length} ${s.bucket}${starts.length === 1 ? "" : "s"} with traffic, ${utc(s.since)} to ${utc(s.until)}, by ${s.by}${s.truncated ? " (truncated)" : ""}.`,
      s.rows.length);
  }

  // ---- budgets and limits ---------------------------------------------------------

  function renderBudgets(b) {
    const rows = b.budgets.map((x) => {
      const used = x.limit_usd > 0 ? x.spent_usd / x.limit_usd : 0;
      const words = used >= 1 ? state("spent", "bad", "✕") : used >= 0.8 ? state("80% or more", "warn", "!") : state("within", "good", "✓");
      return el("tr", { "data-budget": `${x.scope} ${x.name}` },
        el("th", { scope: "row" }, `${x.scope} ${x.name}`), el("td", {}, `${x.period} since ${utc(x.period_start)}`),
        num(usd(x.spent_usd)), num(usd(x.limit_usd)),
        el("td", {}, el("meter", { min: "0", max: "1", low: "0.8", high: "0.99", optimum: "0", value: String(Math.min(used, 1)) }),
          ` ${(used * 100).toFixed(1)}% `, words));
    });
    if (rows.length) $("budget-rows").replaceChildren(...rows);
    else empty($("budget-rows"), 5, "No budgets configured (`budgets` in the config).");
  }

  function quota(q) {
    if (!q) return dash;
    return `${int(q.used)} of ${int(q.limit)} (${int(q.remaining)} left, resets in ${q.reset_secs} s)`;
  }

  function renderLimits(l) {
    const block = $("limits-block");
    const limits = (l && Array.isArray(l.limits)) ? l.limits : [];
    if (!limits.length) { block.hidden = true; return; }
    block.hidden = false;
    const redis = l.redis ? `: ${l.redis.healthy ? "healthy" : "UNHEALTHY"}, ${l.redis.outages} outage(s)` : "";
    $("limits-backend").textContent = `(${l.backend}${redis})`;
    $("limit-rows").replaceChildren(...limits.map((x) => el("tr", { "data-limit": `${x.scope} ${x.name}` },
      el("td", {}, x.scope), el("th", { scope: "row" }, x.name), el("td", {}, x.window_secs ? `${x.window_secs} s` : dash),
      el("td", {}, quota(x.requests)), el("td", {}, quota(x.tokens)),
      el("td", {}, x.concurrent ? `${x.concurrent.in_flight} of ${x.concurrent.limit} in flight` : dash))));
  }

  // ---- refresh loop ---------------------------------------------------------------

  // One section's refresh: a failure is shown in that section, which keeps what it had.
  async function section(name, load, render) {
    try {
      const value = render(await load());
      note(name, "");
      return { ok: true, value };
    } catch (error) {
      note(name, `Could not refresh: ${error.message}`);
      return { ok: false, error };
    }
  }

  let refreshes = 0;
  let noLimits = false;
  // The ledger's series is read once a minute (or when the controls change): its
  // buckets are hours or longer, and the query runs on the ledger's writer.
  const SERIES_EVERY_MS = 60000;
  let series = { query: null, at: 0, data: null };

  async function usageSeries(query) {
    if (series.query !== query || Date.now() - series.at > SERIES_EVERY_MS || !series.data) {
      series = { query, at: Date.now(), data: await get(query) };
    }
    return series.data;
  }
  let timer = null;

  async function refresh() {
    clearTimeout(timer);
    const query = `/admin/usage/series?bucket=${encodeURIComponent($("bucket").value)}&by=${encodeURIComponent($("by").value)}`;
    const done = await Promise.all([
      section("providers", () => get("/admin/providers"), renderProviders),
      section("reloads", () => get("/admin/reloads"), renderReloads),
      section("traffic", () => get("/admin/traffic"), renderTraffic),
      section("usage", async () => [await get("/admin/usage"), await usageSeries(query)], ([u, s]) => { renderUsage(u); renderSeries(s); }),
      section("limits", async () => {
        const budgets = await get("/admin/budgets");
        // Rate limits come from /admin/limits where the host has them; a host without
        // them answers 404 (asked once per page load), and the section shows budgets only.
        let limits = null;
        if (!noLimits) {
          limits = await get("/admin/limits").catch((e) => {
            if (e.status === 404) noLimits = true;
            return null;
          });
        }
        return [budgets, limits];
      }, ([b, l]) => { renderBudgets(b); renderLimits(l); }),
    ]);
    refreshes += 1;
    const failed = done.filter((d) => !d.ok);
    const generation = done[0].ok ? `generation ${done[0].value} · ` : "";
    const now = new Date().toISOString().slice(11, 19);
    $("status").textContent = failed.length
      ? `${generation}${failed.length} section(s) could not refresh at ${now} UTC: ${failed[0].error.message}`
      : `${generation}updated ${now} UTC`;
    document.body.dataset.refreshes = String(refreshes);
    const every = Number($("refresh").value);
    if (every > 0) timer = setTimeout(refresh, every * 1000);
  }

  $("refresh").addEventListener("change", refresh);
  $("bucket").addEventListener("change", refresh);
  $("by").addEventListener("change", refresh);
  refresh();
})();
