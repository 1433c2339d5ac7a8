// dexec dashboard: submit orders, follow them live, inspect their route and outcome.
//
// Plain browser JavaScript, no dependencies. Money never goes through a float: amounts on the
// wire are base-unit strings, shown in token units with BigInt arithmetic, and decimal strings
// from the API (prices, percentages) are only reformatted as text.
(() => {
  "use strict";

  // --- tokens ----------------------------------------------------------------------------------

  // Used when GET /api/tokens is not there; the mints name the tokens of route legs and quotes.
  const FALLBACK_TOKENS = [
    { symbol: "SOL", decimals: 9, mint: "So11111111111111111111111111111111111111112" },
    { symbol: "USDC", decimals: 6, mint: "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v" },
    { symbol: "USDT", decimals: 6, mint: "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB" },
    { symbol: "BONK", decimals: 5, mint: "DezXAZ8z7PnrnRJjz3wXBoRgixCa6xjnB7YaB1pPB263" },
    { symbol: "JUP", decimals: 6, mint: "JUPyiwrYJFskUPiHa7hkeR8VUtAeFoSYbKedZNsDvCN" },
    { symbol: "RAY", decimals: 6, mint: "4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R" },
  ];
  const tokens = { list: [], bySymbol: new Map(), byMint: new Map() };

  function setTokens(list) {
    tokens.list = [];
    tokens.bySymbol.clear();
    tokens.byMint.clear();
    for (const t of list) {
      const decimals = Number(t.decimals);
      if (!t || typeof t.symbol !== "string" || !Number.isInteger(decimals)) continue;
      const token = { symbol: t.symbol, decimals, mint: t.mint || null, name: t.name || "" };
      tokens.list.push(token);
      tokens.bySymbol.set(token.symbol.toUpperCase(), token);
      if (token.mint) tokens.byMint.set(token.mint, token);
    }
  }

  /** A token by symbol (any case) or mint; null if unknown. */
  function token(key) {
    if (!key) return null;
    return tokens.byMint.get(key) || tokens.bySymbol.get(String(key).toUpperCase()) || null;
  }

  function decimalsOf(key) {
    const t = token(key);
    return t ? t.decimals : 0;
  }

  function symbolOf(key) {
    const t = token(key);
    return t ? t.symbol : key ? `${String(key).slice(0, 4)}…` : "?";
  }

  // --- exact number formatting -----------------------------------------------------------------

  function groupDigits(digits) {
    return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  /** "1500000000", 9 → "1.5"; exact, whatever the size. */
  function formatUnits(base, decimals) {
    if (base === null || base === undefined || base === "") return "–";
    let value;
    try {
      value = BigInt(base);
    } catch {
      return String(base);
    }
    const negative = value < 0n;
    if (negative) value = -value;
    const scale = 10n ** BigInt(decimals);
    const whole = groupDigits((value / scale).toString());
    const fraction = decimals ? (value % scale).toString().padStart(decimals, "0").replace(/0+$/, "") : "";
    return (negative ? "-" : "") + whole + (fraction ? `.${fraction}` : "");
  }

  /** A decimal string as the API writes it ("0.0044", "0E-4", "147.041173333") → "0.0044". */
  function formatDecimal(text) {
    const m = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(String(text ?? "").trim());
    if (!m || (m[2] === "" && !m[3])) return text === null || text === undefined ? "–" : String(text);
    const [, sign, intPart, fracPart = "", exp = "0"] = m;
    let digits = intPart + fracPart;
    let point = intPart.length + Number(exp); // where the decimal point goes in `digits`
    if (point < 0) {
      digits = "0".repeat(-point) + digits;
      point = 0;
    }
    if (point > digits.length) digits += "0".repeat(point - digits.length);
    const whole = digits.slice(0, point).replace(/^0+/, "") || "0";
    const fraction = digits.slice(point).replace(/0+$/, "");
    const zero = whole === "0" && !fraction;
    return (sign && !zero ? "-" : "") + groupDigits(whole) + (fraction ? `.${fraction}` : "");
  }

  function amount(base, key) {
    const t = token(key);
    return t ? `${formatUnits(base, t.decimals)} ${t.symbol}` : `${base} (base units)`;
  }

  /** null when `text` is a positive amount with at most `decimals` decimals, else why not. */
  function amountProblem(text, decimals) {
    const m = /^(\d*)(?:\.(\d*))?$/.exec(text.trim());
    if (!text.trim() || !m || (m[1] === "" && !m[2])) return "Enter an amount, like 1.5";
    if ((m[2] || "").replace(/0+$/, "").length > decimals) return `At most ${decimals} decimals`;
    if (!/[1-9]/.test(text)) return "The amount must be more than zero";
    return null;
  }

  // --- time --------------------------------------------------------------------------------------

  /** Milliseconds since the epoch of an ISO timestamp with any number of fraction digits. */
  function parseAt(iso) {
    if (!iso) return NaN;
    return Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  }

  function duration(ms) {
    if (!Number.isFinite(ms)) return "–";
    if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
    return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  }

  function clockTime(ms) {
    return Number.isFinite(ms) ? new Date(ms).toLocaleTimeString([], { hour12: false }) : "–";
  }

  // The server's clock minus ours, estimated NTP-style from our own submissions: the `pending`
  // event is stamped while our POST is in flight, so it is about the midpoint of the request.
  const clock = { skew: 0, rtt: Infinity };
  function serverNow() {
    return Date.now() + clock.skew;
  }

  // --- DOM helpers -------------------------------------------------------------------------------

  const $ = (selector) => document.querySelector(selector);

  /** h("td", {class: "num"}, "text", node…): builds elements without innerHTML. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "testid") el.dataset.testid = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "testid") el.setAttribute("data-testid", v);
      else el.setAttribute(k, String(v));
    }
    for (const child of children) el.append(child instanceof Node ? child : String(child));
    return el;
  }

  const STATUS_RANK = { pending: 0, routing: 1, building: 2, submitted: 3, confirmed: 4, failed: 4 };
  const TERMINAL = new Set(["confirmed", "failed"]);

  function badge(status, extra = {}) {
    return h("span", { class: "badge", "data-status": status, ...extra }, status);
  }

  // --- API ---------------------------------------------------------------------------------------

  class ApiFailure extends Error {
    constructor(status, error) {
      super((error && error.message) || `HTTP ${status}`);
      this.status = status;
      this.code = (error && error.code) || `HTTP_${status}`;
    }
  }

  async function getJson(path) {
    const res = await fetch(path, { headers: { accept: "application/json" } });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new ApiFailure(res.status, body && body.error);
    return body;
  }

  function idempotencyKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    // Not a secure context (plain http on a non-local host): build a v4 UUID by hand.
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const x = Array.from(b, (n) => n.toString(16).padStart(2, "0")).join("");
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /** POST one order with its own Idempotency-Key; 429/503 are retried with the same key. */
  async function postOrder(body) {
    const key = idempotencyKey();
    for (let attempt = 1; ; attempt++) {
      const sentAt = Date.now();
      const res = await fetch("/api/orders/execute", {
        method: "POST",
        headers: { "content-type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify(body),
      });
      const receivedAt = Date.now();
      const data = await res.json().catch(() => null);
      if (res.ok) return { data, sentAt, receivedAt };
      if ((res.status === 429 || res.status === 503) && attempt < 4) {
        const wait = Number(res.headers.get("retry-after")) || 1;
        await sleep(Math.min(wait, 5) * 1000);
        continue;
      }
      throw new ApiFailure(res.status, data && data.error);
    }
  }

  // --- orders --------------------------------------------------------------------------------

  const MAX_ROWS = 500;
  const orders = new Map(); // orderId → order, in insertion order
  let selectedId = null;
  let wsBase = "";

  function newOrder(id, fields) {
    const order = {
      id,
      tokenIn: fields.tokenIn,
      tokenOut: fields.tokenOut,
      amountIn: fields.amountIn,
      status: fields.status || "pending",
      streamUrl: (fields.links && fields.links.stream) || null,
      seqs: new Set(),
      lastSeq: 0,
      submittedAt: NaN,
      terminalAt: NaN,
      route: fields.route || null,
      execution: fields.execution || null,
      failure: fields.failure || null,
      attempt: fields.attempts || 1,
      post: null,
      sampled: false,
      row: null,
    };
    orders.set(id, order);
    return order;
  }

  function isTerminal(order) {
    return TERMINAL.has(order.status);
  }

  /** Apply one WebSocket event; duplicates (by seq) are ignored, status only moves forward. */
  function applyEvent(order, ev) {
    if (order.seqs.has(ev.seq)) return;
    order.seqs.add(ev.seq);
    order.lastSeq = Math.max(order.lastSeq, ev.seq);
    const at = parseAt(ev.at);
    const data = ev.data || {};
    switch (ev.event) {
      case "pending":
        order.submittedAt = at;
        order.tokenIn = order.tokenIn || data.tokenIn;
        order.tokenOut = order.tokenOut || data.tokenOut;
        order.amountIn = order.amountIn || data.amountIn;
        if (order.post) estimateSkew(order.post, at);
        break;
      case "routed":
        order.route = order.route || data;
        break;
      case "confirmed":
        order.execution = data;
        order.terminalAt = at;
        break;
      case "failed":
        order.failure = data;
        order.terminalAt = at;
        break;
      case "retrying":
        order.attempt = Math.max(order.attempt, (ev.attempt || 1) + 1);
        break;
      default:
        break;
    }
    if (ev.status in STATUS_RANK && STATUS_RANK[ev.status] > STATUS_RANK[order.status]) {
      order.status = ev.status;
    }
    if (isTerminal(order)) recordSample(order);
    renderRow(order, ev.event === "retrying" ? "retrying" : null);
    scheduleSummary();
    if (order.id === selectedId) scheduleDetails();
  }

  function estimateSkew(post, pendingAt) {
    const rtt = post.receivedAt - post.sentAt;
    if (!Number.isFinite(pendingAt) || rtt >= clock.rtt) return;
    clock.rtt = rtt;
    clock.skew = pendingAt - (post.sentAt + post.receivedAt) / 2;
  }

  // --- live streams ------------------------------------------------------------------------------
  //
  // Per order: one WebSocket to /ws/orders/{id}, which sends the backfill then live events and
  // closes with 1000 after the terminal event; a dropped socket resumes with ?afterSeq=. If the
  // notifier accepts {"op":"subscribe","orderIds":[…]} on /ws, one socket carries every order
  // instead; anything that goes wrong there falls back to the per-order sockets.

  const MAX_SOCKETS = 64;
  const live = {
    mode: "per-order", // "per-order" | "probing" | "mux"
    sockets: 0,
    queue: [],
    mux: null,
    muxEvents: 0,
  };

  function handleMessage(raw, expectedId) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return;
    }
    if (msg && msg.error) {
      const id = msg.error.orderId || msg.orderId || expectedId;
      if (id === PROBE_ID) confirmMux();
      else if (id && orders.has(id)) orders.get(id).streamError = msg.error;
      return;
    }
    if (!msg || typeof msg.orderId !== "string" || typeof msg.seq !== "number") return;
    const order = orders.get(msg.orderId);
    if (order) applyEvent(order, msg);
    return order;
  }

  function follow(order) {
    if (isTerminal(order)) return;
    if (live.mode === "mux" || live.mode === "probing") muxSubscribe(order);
    else followAlone(order);
  }

  function followAlone(order) {
    if (isTerminal(order) || order.socket || order.queued) return;
    if (live.sockets >= MAX_SOCKETS) {
      order.queued = true;
      live.queue.push(order);
      return;
    }
    live.sockets += 1;
    const base = order.streamUrl || `${wsBase}/ws/orders/${encodeURIComponent(order.id)}`;
    const ws = new WebSocket(order.lastSeq ? `${base}?afterSeq=${order.lastSeq}` : base);
    order.socket = ws;
    ws.onmessage = (m) => {
      order.retries = 0;
      handleMessage(m.data, order.id);
    };
    ws.onclose = (e) => {
      order.socket = null;
      live.sockets -= 1;
      pumpQueue();
      if (isTerminal(order) || e.code === 4404) return;
      // Dropped before the end: resume after the last event seen, backing off (at least the
      // second a 4429, over the subscribe budget, asks for).
      order.retries = (order.retries || 0) + 1;
      const delay = Math.min(5000, 250 * 2 ** order.retries);
      setTimeout(() => followAlone(order), e.code === 4429 ? Math.max(1000, delay) : delay);
    };
  }

  function pumpQueue() {
    while (live.sockets < MAX_SOCKETS && live.queue.length) {
      const next = live.queue.shift();
      next.queued = false;
      followAlone(next);
    }
  }

  // An id no order has: a notifier that multiplexes answers it with ORDER_NOT_FOUND and keeps
  // the socket open; one that does not closes a bare /ws with 4400.
  const PROBE_ID = "00000000-0000-0000-0000-000000000000";

  function confirmMux() {
    if (live.mode === "probing") setMode("mux");
  }

  function startMux() {
    live.mode = "probing";
    let ws;
    try {
      ws = new WebSocket(`${wsBase}/ws`);
    } catch {
      return muxFailed();
    }
    live.mux = { ws, open: false, pending: new Set(), watched: new Set() };
    ws.onopen = () => {
      live.mux.open = true;
      muxSend({ op: "subscribe", orderIds: [PROBE_ID] });
      flushSubscriptions();
    };
    ws.onmessage = (m) => {
      const order = handleMessage(m.data, null);
      if (order) {
        live.muxEvents += 1;
        confirmMux();
        if (isTerminal(order) && live.mux) {
          live.mux.watched.delete(order.id);
          muxSend({ op: "unsubscribe", orderIds: [order.id] });
        }
      }
    };
    // A notifier without multiplexing answers a bare /ws with an error and close code 4400.
    ws.onclose = () => muxFailed();
  }

  function muxSend(message) {
    const mux = live.mux;
    if (mux && mux.open && mux.ws.readyState === WebSocket.OPEN) mux.ws.send(JSON.stringify(message));
  }

  function muxSubscribe(order) {
    const mux = live.mux;
    if (!mux) return followAlone(order);
    mux.pending.add(order.id);
    mux.watched.add(order.id);
    if (mux.open) queueMicrotask(flushSubscriptions);
    // The backfill starts with `pending`, so silence means the subscription did not take.
    setTimeout(() => {
      if (order.seqs.size === 0 && !isTerminal(order)) {
        if (live.mode !== "mux") muxFailed();
        else followAlone(order);
      }
    }, 2000);
  }

  function flushSubscriptions() {
    const mux = live.mux;
    if (!mux || !mux.open || !mux.pending.size) return;
    const ids = [...mux.pending];
    const afterSeq = {};
    for (const id of ids) {
      const order = orders.get(id);
      if (order && order.lastSeq) afterSeq[id] = order.lastSeq;
    }
    muxSend({ op: "subscribe", orderIds: ids, afterSeq });
    mux.pending.clear();
  }

  function muxFailed() {
    const mux = live.mux;
    live.mux = null;
    if (mux) {
      mux.ws.onclose = null;
      if (mux.ws.readyState <= WebSocket.OPEN) mux.ws.close();
    }
    setMode("per-order");
    for (const order of orders.values()) if (!isTerminal(order)) followAlone(order);
  }

  function setMode(mode) {
    live.mode = mode;
    const pill = $("[data-testid=transport]");
    pill.dataset.mode = mode;
    pill.dataset.state = "ok";
    pill.textContent =
      mode === "mux" ? "live · one multiplexed socket" : mode === "probing" ? "live · connecting" : "live · a socket per order";
  }

  // --- orders table ------------------------------------------------------------------------------

  function venuesOf(route) {
    if (!route || !Array.isArray(route.routePlan)) return [];
    return [...new Set(route.routePlan.map((leg) => leg.venue))];
  }

  function outCell(order) {
    if (order.execution) return amountCell(order.execution.outAmount, order.tokenOut);
    if (order.route && !order.failure) {
      const cell = amountCell(order.route.outAmount, order.tokenOut);
      cell.classList.add("muted");
      cell.title = "quoted";
      cell.prepend("≈ ");
      return cell;
    }
    return h("td", { class: "num muted" }, "–");
  }

  function amountCell(base, key) {
    const t = token(key);
    if (!t) return h("td", { class: "num" }, base ?? "–");
    return h("td", { class: "num" }, formatUnits(base, t.decimals), h("span", { class: "unit" }, t.symbol));
  }

  function renderRow(order, flash) {
    const latency = order.terminalAt - order.submittedAt;
    const cells = [
      h("td", { class: "id", title: order.id }, order.id.slice(0, 8)),
      h("td", {}, `${symbolOf(order.tokenIn)} → ${symbolOf(order.tokenOut)}`),
      amountCell(order.amountIn, order.tokenIn),
      outCell(order),
      h("td", { class: "venue" }, venuesOf(order.route).join(" + ") || h("span", { class: "muted" }, "–")),
      h(
        "td",
        {},
        badge(flash || order.status, {
          testid: "order-status",
          class: isTerminal(order) ? "badge" : "badge live",
        }),
        order.attempt > 1 && !isTerminal(order)
          ? h("small", { class: "attempt", title: `attempt ${order.attempt}` }, `↻${order.attempt}`)
          : null,
      ),
      h("td", { class: "num" }, isTerminal(order) ? duration(latency) : h("span", { class: "muted" }, "…")),
    ];
    let tr = order.row;
    if (!tr) {
      tr = h("tr", { testid: "order-row", tabindex: "0", class: order.post ? "fresh" : null, "data-order-id": order.id });
      tr.addEventListener("click", () => selectOrder(order.id));
      tr.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          selectOrder(order.id);
        }
      });
      order.row = tr;
    }
    tr.dataset.status = order.status;
    tr.dataset.terminal = String(isTerminal(order));
    tr.setAttribute("aria-selected", String(order.id === selectedId));
    tr.replaceChildren(...cells);
    return tr;
  }

  function addRows(list, atTop) {
    const body = $("#orders-body");
    const rows = list.map((order) => renderRow(order));
    if (atTop) body.prepend(...rows);
    else body.append(...rows);
    trimRows();
    scheduleSummary();
  }

  function trimRows() {
    if (orders.size <= MAX_ROWS) return;
    for (const order of orders.values()) {
      if (orders.size <= MAX_ROWS) break;
      if (!isTerminal(order) || order.id === selectedId) continue;
      order.row.remove();
      orders.delete(order.id);
    }
  }

  let summaryQueued = false;
  function scheduleSummary() {
    if (summaryQueued) return;
    summaryQueued = true;
    requestAnimationFrame(() => {
      summaryQueued = false;
      const counts = {};
      for (const order of orders.values()) counts[order.status] = (counts[order.status] || 0) + 1;
      const items = Object.keys(STATUS_RANK)
        .filter((status) => counts[status])
        .map((status) => h("li", {}, badge(status), h("span", {}, counts[status])));
      $("#status-summary").replaceChildren(...items);
      $("#orders-count").textContent = orders.size ? `${orders.size}` : "";
      $("#orders-empty").hidden = orders.size > 0;
      drawChart();
    });
  }

  // --- order details -----------------------------------------------------------------------------

  let detailsTimer = null;
  let detailsRequest = 0;

  function selectOrder(id) {
    const previous = orders.get(selectedId);
    selectedId = id;
    if (previous && previous.row) previous.row.setAttribute("aria-selected", "false");
    const order = orders.get(id);
    if (order && order.row) order.row.setAttribute("aria-selected", "true");
    $("#details-close").hidden = false;
    $("#details-body").replaceChildren(h("p", { class: "empty" }, "Loading…"));
    loadDetails();
  }

  function closeDetails() {
    const order = orders.get(selectedId);
    if (order && order.row) order.row.setAttribute("aria-selected", "false");
    selectedId = null;
    $("#details-close").hidden = true;
    $("#details-body").replaceChildren(
      h("p", { class: "empty" }, "Select an order to see its route, outcome and timeline."),
    );
  }

  function scheduleDetails() {
    clearTimeout(detailsTimer);
    detailsTimer = setTimeout(loadDetails, 150);
  }

  async function loadDetails() {
    const id = selectedId;
    if (!id) return;
    const request = ++detailsRequest;
    try {
      const data = await getJson(`/api/orders/${encodeURIComponent(id)}`);
      if (request !== detailsRequest || id !== selectedId) return;
      const panel = $(".details");
      const scroll = panel.scrollTop;
      $("#details-body").replaceChildren(renderDetails(data));
      panel.scrollTop = scroll;
    } catch (err) {
      if (request !== detailsRequest) return;
      $("#details-body").replaceChildren(h("p", { class: "empty" }, `Could not load the order: ${err.message}`));
    }
  }

  function kv(pairs) {
    return h(
      "dl",
      { class: "kv" },
      pairs.filter(Boolean).map(([label, value, testid]) => [h("dt", {}, label), h("dd", { testid }, value)]),
    );
  }

  function shortAddress(address) {
    return address && address.length > 12 ? `${address.slice(0, 4)}…${address.slice(-4)}` : address || "";
  }

  function venueClass(venue) {
    return venue === "raydium" || venue === "meteora" ? `venue-${venue}` : "venue-other";
  }

  function renderDetails(o) {
    const route = o.route;
    const events = o.events || [];
    const outBase = o.execution ? o.execution.outAmount : route ? route.outAmount : null;
    const first = events.length ? parseAt(events[0].at) : NaN;
    const last = events.length ? parseAt(events[events.length - 1].at) : NaN;
    return h(
      "div",
      { "data-order-id": o.orderId },
      h(
        "div",
        { class: "details-title" },
        h("span", { class: "mono", testid: "detail-order-id", title: o.orderId }, o.orderId),
        badge(o.status, { testid: "detail-status" }),
      ),
      h(
        "p",
        { class: "headline" },
        amount(o.amountIn, o.tokenIn),
        h("span", { class: "arrow" }, "→"),
        outBase ? `${o.execution ? "" : "≈ "}${amount(outBase, o.tokenOut)}` : symbolOf(o.tokenOut),
      ),
      h(
        "p",
        { class: "subline muted" },
        [
          `submitted ${clockTime(first)}`,
          `slippage ${o.slippageBps} bps`,
          o.attempts > 1 ? `${o.attempts} attempts` : null,
          TERMINAL.has(o.status) ? `${o.status} after ${duration(last - first)}` : null,
        ]
          .filter(Boolean)
          .join(" · "),
      ),
      renderOutcome(o),
      route ? renderRoute(o, route) : [h("h3", {}, "Route"), h("p", { class: "muted" }, "Not routed yet.")],
      h("h3", {}, "Timeline"),
      h(
        "ol",
        { class: "timeline", testid: "timeline" },
        events.map((ev) =>
          h(
            "li",
            { "data-event": ev.event, testid: "timeline-event" },
            h("span", { class: "t" }, `+${duration(parseAt(ev.at) - first)}`),
            h("span", {}, badge(ev.event === "routed" || ev.event === "retrying" ? ev.event : ev.status)),
            h("span", { class: "what" }, describeEvent(ev, o)),
          ),
        ),
      ),
    );
  }

  function describeEvent(ev, o) {
    const d = ev.data || {};
    switch (ev.event) {
      case "pending":
        return "accepted";
      case "routing":
        return "asking the venues";
      case "routed": {
        const chosen = (d.candidates || []).find((c) => c.chosen);
        return chosen ? chosen.description : (d.routePlan || []).map((leg) => `${leg.venue} ${leg.percent}%`).join(", ");
      }
      case "building":
        return ev.attempt > 1 ? `attempt ${ev.attempt}` : "signing";
      case "submitted":
        return `sent ${shortAddress(d.signature)}${ev.attempt > 1 ? ` (attempt ${ev.attempt})` : ""}`;
      case "confirmed":
        return `landed in slot ${d.slot ?? "?"}`;
      case "retrying":
        return `${d.code || ""}: ${d.reason || ""}`;
      case "failed":
        return `${d.code || ""}: ${d.reason || ""}`;
      default:
        return o.status;
    }
  }

  function renderRoute(o, route) {
    const plan = route.routePlan || [];
    // One split bar per hop: a direct route has one, a route through another token two.
    const hops = new Map();
    for (const leg of plan) {
      const key = `${leg.inputMint || o.tokenIn}>${leg.outputMint || o.tokenOut}`;
      if (!hops.has(key)) hops.set(key, []);
      hops.get(key).push(leg);
    }
    const multiHop = hops.size > 1;
    return h(
      "section",
      { testid: "route" },
      h("h3", {}, "Route"),
      h("p", { class: "reason", testid: "route-reason" }, route.reason || ""),
      h(
        "p",
        { class: "chosen-line" },
        h("span", { class: "muted" }, "Chosen "),
        h("strong", { testid: "chosen-venue" }, venuesOf(route).join(" + ")),
        plan.length > 1 ? h("span", { class: "muted" }, ` · ${plan.length} pools`) : null,
      ),
      [...hops.entries()].map(([key, legs]) => {
        const [inMint, outMint] = key.split(">");
        return [
          multiHop ? h("small", { class: "muted" }, `${symbolOf(inMint)} → ${symbolOf(outMint)}`) : null,
          h("div", { class: "split", "aria-hidden": "true" }, legs.map(splitPart)),
        ];
      }),
      renderQuotes(o, route, multiHop),
      h("ul", { class: "legs", "aria-label": "Legs of the chosen route" }, plan.map((leg) => renderLeg(o, leg))),
      kv([
        ["Quoted out", amount(route.outAmount, o.tokenOut)],
        ["Minimum out", amount(route.otherAmountThreshold, o.tokenOut)],
        ["Price impact", `${formatDecimal(route.priceImpactPct)}%`, "price-impact"],
        route.networkFeeLamports && ["Network fee", amount(route.networkFeeLamports, "SOL")],
      ]),
      renderCandidates(o, route.candidates || []),
    );
  }

  function splitPart(leg) {
    const part = h("span", { class: venueClass(leg.venue), title: `${leg.venue} ${leg.percent}%` });
    part.style.flex = `${Math.max(leg.percent, 1)} 1 0`;
    part.textContent = leg.percent >= 18 ? `${leg.venue} ${leg.percent}%` : `${leg.percent}%`;
    return part;
  }

  function renderLeg(o, leg) {
    return h(
      "li",
      { testid: "route-leg", "data-venue": leg.venue, "data-percent": leg.percent },
      h("span", { class: "pct" }, `${leg.percent}%`),
      h(
        "span",
        {},
        h("strong", {}, leg.venue),
        ` · ${leg.label || "pool"} `,
        h("span", { class: "muted mono", title: leg.pool }, shortAddress(leg.pool)),
        h("br"),
        `${amount(leg.inAmount, leg.inputMint || o.tokenIn)} → ${amount(leg.outAmount, leg.outputMint || o.tokenOut)}`,
      ),
    );
  }

  /** Every venue's quote (one per pool and hop); the pools the route uses are marked. */
  function renderQuotes(o, route, multiHop) {
    const used = new Set((route.routePlan || []).map((leg) => leg.pool));
    const quotes = route.quotes || [];
    const failedVenues = Object.entries(route.failedVenues || {});
    // A route through another token quotes each hop: group the quotes by hop.
    const groups = new Map();
    for (const q of quotes) {
      const key = multiHop ? `${q.inputMint}>${q.outputMint}` : "";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(q);
    }
    const quoteRow = (q) => {
      const chosen = used.has(q.pool);
      const label = q.label || q.venue;
      const named = label.toLowerCase().startsWith(String(q.venue).toLowerCase());
      return h(
        "tr",
        { testid: "quote-row", "data-venue": q.venue, "data-chosen": String(chosen), class: chosen ? "chosen" : null },
        h(
          "td",
          { title: `${q.venue} pool ${q.pool}` },
          named ? null : h("span", { class: "muted" }, `${q.venue} · `),
          h("strong", {}, label),
          chosen ? h("span", { class: "tag" }, "used") : null,
        ),
        h("td", { class: "num" }, formatUnits(q.outAmount, decimalsOf(q.outputMint || o.tokenOut))),
        h("td", { class: "num" }, `${formatDecimal(q.priceImpactPct)}%`),
      );
    };
    return h(
      "table",
      { class: "mini quotes", testid: "quotes" },
      h("caption", {}, `Quotes (${quotes.length})`),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Pool"),
          h("th", { scope: "col", class: "num" }, multiHop ? "Out" : `Out (${symbolOf(o.tokenOut)})`),
          h("th", { scope: "col", class: "num" }, "Impact"),
        ),
      ),
      h(
        "tbody",
        {},
        [...groups.entries()].map(([key, group]) => {
          if (!multiHop) return group.map(quoteRow);
          const [inMint, outMint] = key.split(">");
          return [
            h("tr", { class: "hop" }, h("th", { colspan: "3", scope: "colgroup" }, `${symbolOf(inMint)} → ${symbolOf(outMint)}`)),
            group.map(quoteRow),
          ];
        }),
        failedVenues.map(([venue, why]) =>
          h(
            "tr",
            { testid: "quote-row", "data-venue": venue, "data-chosen": "false", "data-failed": "true" },
            h("td", {}, h("strong", {}, venue)),
            h("td", { class: "num muted", colspan: "2" }, `no quote: ${why}`),
          ),
        ),
      ),
    );
  }

  function renderCandidates(o, candidates) {
    if (!candidates.length) return null;
    return h(
      "details",
      { class: "candidates" },
      h("summary", {}, `Routes considered (${candidates.length})`),
      h(
        "table",
        { class: "mini" },
        h(
          "thead",
          {},
          h("tr", {}, h("th", { scope: "col" }, "Route"), h("th", { scope: "col", class: "num" }, "Out after fee")),
        ),
        h(
          "tbody",
          {},
          candidates.map((c) =>
            h(
              "tr",
              { class: c.chosen ? "chosen" : null },
              h("td", {}, c.description, c.chosen ? h("span", { class: "tag" }, "chosen") : null),
              h("td", { class: "num" }, amount(c.netOutAmount, o.tokenOut)),
            ),
          ),
        ),
      ),
    );
  }

  function renderOutcome(o) {
    const x = o.execution;
    const f = o.failure;
    let body;
    if (x) {
      body = kv([
        ["Tx hash", h("span", { class: "mono" }, x.txHash), "tx-hash"],
        [
          "Executed price",
          `1 ${symbolOf(o.tokenIn)} = ${formatDecimal(x.executedPrice)} ${symbolOf(o.tokenOut)}`,
          "executed-price",
        ],
        ["Spent", amount(x.inAmount, o.tokenIn), "amount-in"],
        ["Received", amount(x.outAmount, o.tokenOut), "amount-out"],
        ["Fee", amount(x.feeLamports, "SOL")],
        ["Slot", String(x.slot ?? "–")],
      ]);
    } else if (f) {
      body = h(
        "div",
        { class: "outcome-failed", role: "alert" },
        h("strong", { testid: "failure-code" }, f.code),
        h("span", { testid: "failure-reason" }, f.reason),
        f.attempts ? h("div", { class: "muted" }, `after ${f.attempts} attempt${f.attempts > 1 ? "s" : ""}`) : null,
      );
    } else {
      body = h("p", { class: "muted" }, `In progress: ${o.status}…`);
    }
    return h("section", { testid: "outcome" }, h("h3", {}, "Outcome"), body);
  }

  // --- chart: throughput and latency over the last minute --------------------------------------

  const WINDOW_S = 60;
  const samples = []; // {at, latency, ok}, by the terminal event's server time

  function recordSample(order) {
    if (order.sampled || !Number.isFinite(order.terminalAt)) return;
    order.sampled = true;
    samples.push({
      at: order.terminalAt,
      latency: order.terminalAt - order.submittedAt,
      ok: order.status === "confirmed",
    });
    scheduleSummary();
  }

  function percentile(sorted, p) {
    if (!sorted.length) return NaN;
    return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  }

  function niceCeil(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  function drawChart() {
    const host = $("#chart");
    const width = Math.max(200, host.clientWidth);
    const height = Math.max(120, host.clientHeight);
    const nowS = Math.floor(serverNow() / 1000);
    const firstS = nowS - WINDOW_S + 1;
    while (samples.length && samples[0].at < (firstS - 10) * 1000) samples.shift();

    const buckets = Array.from({ length: WINDOW_S }, () => ({ ok: 0, failed: 0, latencies: [] }));
    const all = [];
    let confirmed = 0;
    let failed = 0;
    for (const sample of samples) {
      const i = Math.floor(sample.at / 1000) - firstS;
      if (i < 0 || i >= WINDOW_S) continue;
      if (sample.ok) {
        buckets[i].ok += 1;
        confirmed += 1;
        if (Number.isFinite(sample.latency)) {
          buckets[i].latencies.push(sample.latency);
          all.push(sample.latency);
        }
      } else {
        buckets[i].failed += 1;
        failed += 1;
      }
    }
    for (const b of buckets) {
      b.latencies.sort((x, y) => x - y);
      b.p50 = percentile(b.latencies, 50);
      b.p90 = percentile(b.latencies, 90);
    }
    all.sort((x, y) => x - y);
    const peak = Math.max(0, ...buckets.map((b) => b.ok));
    $("[data-testid=stat-confirmed]").textContent = String(confirmed);
    $("[data-testid=stat-failed]").textContent = String(failed);
    $("[data-testid=stat-peak]").textContent = peak ? `${peak}/s` : "–";
    $("[data-testid=stat-p50]").textContent = duration(percentile(all, 50));
    $("[data-testid=stat-p90]").textContent = duration(percentile(all, 90));

    const pad = { left: 34, right: 48, top: 8, bottom: 20 };
    const plotW = width - pad.left - pad.right;
    const plotH = height - pad.top - pad.bottom;
    const rateMax = niceCeil(Math.max(...buckets.map((b) => b.ok + b.failed), 1));
    const latMax = niceCeil(Math.max(0, ...buckets.map((b) => (Number.isFinite(b.p90) ? b.p90 : 0))) || 1000);
    const slot = plotW / WINDOW_S;
    const x = (i) => pad.left + i * slot;
    const yRate = (v) => pad.top + plotH - (v / rateMax) * plotH;
    const yLat = (v) => pad.top + plotH - (v / latMax) * plotH;

    const svg = s("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      testid: "chart-svg",
      "data-confirmed": confirmed,
      "data-failed": failed,
    });
    const grid = s("g", { class: "grid" });
    const axis = s("g", { class: "axis" });
    for (const f of [0, 0.5, 1]) {
      const y = pad.top + plotH - f * plotH;
      grid.append(s("line", { x1: pad.left, x2: pad.left + plotW, y1: y, y2: y }));
      axis.append(s("text", { x: pad.left - 6, y: y + 3, "text-anchor": "end" }, `${+(rateMax * f).toFixed(1)}/s`));
      axis.append(s("text", { x: pad.left + plotW + 6, y: y + 3 }, duration(latMax * f)));
    }
    for (const [i, label] of [[0, "−60 s"], [30, "−30 s"], [WINDOW_S - 1, "now"]]) {
      const anchor = i === 0 ? "start" : i === WINDOW_S - 1 ? "end" : "middle";
      axis.append(s("text", { x: x(i) + (i === WINDOW_S - 1 ? slot : 0), y: height - 5, "text-anchor": anchor }, label));
    }
    svg.append(grid, axis);

    const bars = s("g", {});
    const barW = Math.max(1, slot - Math.min(3, slot * 0.3));
    buckets.forEach((b, i) => {
      if (b.ok) {
        const y = yRate(b.ok);
        bars.append(
          s(
            "rect",
            { class: "bar", testid: "throughput-bar", x: x(i), y, width: barW, height: pad.top + plotH - y },
            s("title", {}, `${b.ok} confirmed, p50 ${duration(b.p50)}, p90 ${duration(b.p90)}`),
          ),
        );
      }
      if (b.failed) {
        const base = yRate(b.ok);
        const y = yRate(b.ok + b.failed);
        bars.append(
          s("rect", { class: "bar-failed", x: x(i), y, width: barW, height: base - y }, s("title", {}, `${b.failed} failed`)),
        );
      }
    });
    svg.append(bars);

    for (const key of ["p90", "p50"]) {
      let d = "";
      const dots = s("g", {});
      buckets.forEach((b, i) => {
        if (!Number.isFinite(b[key])) return;
        const px = x(i) + barW / 2;
        const py = yLat(b[key]);
        d += `${d && Number.isFinite(buckets[i - 1] && buckets[i - 1][key]) ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`;
        dots.append(s("circle", { class: `dot-${key}`, cx: px, cy: py, r: 3.2 }));
      });
      if (d) svg.append(s("path", { class: `line-${key}`, d, testid: `latency-${key}` }), dots);
    }
    if (!samples.length) {
      svg.append(
        s("text", { class: "idle", x: pad.left + plotW / 2, y: pad.top + plotH * 0.3, "text-anchor": "middle" }, "waiting for orders…"),
      );
    }
    host.replaceChildren(svg);
  }

  // --- the form ------------------------------------------------------------------------------

  function fillTokenSelects() {
    const make = (select, preferred) => {
      select.replaceChildren(...tokens.list.map((t) => h("option", { value: t.symbol }, t.symbol)));
      select.value = token(preferred) ? token(preferred).symbol : tokens.list[0].symbol;
    };
    make($("#token-in"), "SOL");
    make($("#token-out"), "USDC");
    updateAmountUnit();
  }

  function updateAmountUnit() {
    const t = token($("#token-in").value);
    $("#amount-unit").textContent = t ? t.symbol : "";
    $("#amount").title = t ? `${t.symbol} has ${t.decimals} decimals` : "";
  }

  function say(text, kind) {
    const el = $("#form-message");
    el.textContent = text;
    if (kind) el.dataset.kind = kind;
    else delete el.dataset.kind;
  }

  /** The order body from the form, or null (with the problem shown) if the form is not valid. */
  function readForm() {
    const tokenIn = $("#token-in").value;
    const tokenOut = $("#token-out").value;
    const amountInput = $("#amount");
    const slippageInput = $("#slippage");
    const t = token(tokenIn);
    const problems = [];
    const amountIssue = t ? amountProblem(amountInput.value, t.decimals) : "Choose a token to sell";
    amountInput.setAttribute("aria-invalid", String(Boolean(amountIssue)));
    if (amountIssue) problems.push(amountIssue);
    const slippage = Number(slippageInput.value);
    const slippageBad = !Number.isInteger(slippage) || slippage < 0 || slippage > 10000;
    slippageInput.setAttribute("aria-invalid", String(slippageBad));
    if (slippageBad) problems.push("Slippage is a whole number of bps from 0 to 10000");
    if (tokenIn === tokenOut) problems.push("Choose two different tokens");
    if (problems.length) {
      say(problems.join(". "), "error");
      return null;
    }
    return { type: "market", tokenIn, tokenOut, amount: amountInput.value.trim(), slippageBps: slippage };
  }

  async function submit(count) {
    const body = readForm();
    if (!body) return;
    const buttons = document.querySelectorAll("#order-form button[type=submit], #submit-burst");
    buttons.forEach((b) => (b.disabled = true));
    say(count > 1 ? `Submitting ${count} orders…` : "Submitting…");
    try {
      const results = await Promise.allSettled(Array.from({ length: count }, () => accept(body)));
      const refused = results.filter((r) => r.status === "rejected").map((r) => r.reason);
      const accepted = count - refused.length;
      if (!refused.length) {
        say(count > 1 ? `${count} orders submitted.` : "Order submitted.", "ok");
      } else {
        const why = [...new Set(refused.map((e) => `${e.code || "ERROR"}: ${e.message}`))].join("; ");
        say(`${accepted} of ${count} submitted. ${why}`, "error");
      }
    } finally {
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  /** Submit one order; its row appears as soon as the API accepts it. */
  async function accept(body) {
    const { data, sentAt, receivedAt } = await postOrder(body);
    let order = orders.get(data.orderId);
    if (!order) {
      order = newOrder(data.orderId, data);
      order.post = { sentAt, receivedAt };
      addRows([order], true);
    }
    follow(order);
    return order;
  }

  // --- start ---------------------------------------------------------------------------------

  async function loadTokens() {
    try {
      const body = await getJson("/api/tokens");
      const list = Array.isArray(body) ? body : body && (body.tokens || body.items);
      if (Array.isArray(list)) setTokens(list);
    } catch {
      // Not there yet (404) or unreachable: the built-in list below.
    }
    if (!tokens.list.length) setTokens(FALLBACK_TOKENS);
    // Mints of the built-in tokens still name legs and quotes if the API's list lacks them.
    for (const t of FALLBACK_TOKENS) {
      if (!tokens.byMint.has(t.mint) && token(t.symbol)) tokens.byMint.set(t.mint, token(t.symbol));
    }
  }

  async function loadConfig() {
    let url = "";
    try {
      url = (await getJson("/api/config")).wsUrl || "";
    } catch {
      // Fall through: the notifier behind the same host (as an ingress routes /ws).
    }
    if (!/^wss?:\/\//.test(url)) {
      url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${url.startsWith("/") ? url : ""}`;
    }
    wsBase = url.replace(/\/+$/, "");
  }

  async function loadRecent() {
    try {
      const body = await getJson("/api/orders?limit=50");
      const recent = (body.orders || []).filter((o) => !orders.has(o.orderId));
      const list = recent.map((o) => {
        const order = newOrder(o.orderId, o);
        order.submittedAt = parseAt(o.createdAt);
        if (isTerminal(order)) {
          order.terminalAt = parseAt(o.updatedAt);
          recordSample(order);
        }
        return order;
      });
      addRows(list, false);
      list.forEach(follow);
    } catch (err) {
      say(`Could not list recent orders: ${err.message}`, "error");
    }
  }

  async function main() {
    $("#order-form").addEventListener("submit", (e) => {
      e.preventDefault();
      submit(1);
    });
    $("#submit-burst").addEventListener("click", () => {
      const input = $("#burst-size");
      const n = Number(input.value);
      const bad = !Number.isInteger(n) || n < 1 || n > 200;
      input.setAttribute("aria-invalid", String(bad));
      if (bad) return say("A burst is 1 to 200 orders", "error");
      submit(n);
    });
    $("#swap-tokens").addEventListener("click", () => {
      const a = $("#token-in");
      const b = $("#token-out");
      [a.value, b.value] = [b.value, a.value];
      updateAmountUnit();
    });
    $("#token-in").addEventListener("change", updateAmountUnit);
    $("#details-close").addEventListener("click", closeDetails);
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && selectedId) closeDetails();
    });
    window.addEventListener("resize", scheduleSummary);

    const buttons = document.querySelectorAll("#order-form button");
    buttons.forEach((b) => (b.disabled = true));
    await Promise.all([loadTokens(), loadConfig()]);
    fillTokenSelects();
    const forced = new URLSearchParams(location.search).get("transport");
    if (forced === "per-order") setMode("per-order");
    else startMux();
    await loadRecent();
    buttons.forEach((b) => (b.disabled = false));
    document.body.dataset.ready = "true";
    drawChart();
    setInterval(drawChart, 1000);
  }

  main();
})();
