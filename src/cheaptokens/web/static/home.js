// The buy page: live price (polls /api/pricing), countdown to 00:00 UTC, the chart's "now"
// marker, and the quote -> order -> checkout flow through the JSON API. Without this
// script the form posts to /buy and the server does the same steps.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  const $ = (id) => document.getElementById(id);
  let offset = Date.parse(live.dataset.now) - Date.now(); // server clock minus ours
  let midnight = Date.parse(live.dataset.midnight);
  const serverNow = () => Date.now() + offset;
  // Whole cents to "$1,234.56", as the server's money.format_usd (integers only, no floats).
  const usd = (cents) => {
    const c = Math.abs(Math.round(cents));
    return (cents < 0 ? "-" : "") + "$" + Math.floor(c / 100).toLocaleString("en-US") + "." +
      String(c % 100).padStart(2, "0");
  };
  const utcText = (ms) => new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  const fmtLeft = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h + " h " + String(m).padStart(2, "0") + " min " + String(sec).padStart(2, "0") + " s";
  };

  function tick() {
    $("countdown").textContent = fmtLeft(midnight - serverNow());
  }

  function moveNow(nowMs, priceCents) {
    const svg = $("curve");
    if (!svg) return;
    const left = +svg.dataset.left, top = +svg.dataset.top;
    const w = +svg.dataset.plotW, h = +svg.dataset.plotH, list = +svg.dataset.listCents;
    const dayStart = midnight - 86400000;
    const hours = Math.min(24, Math.max(0, (nowMs - dayStart) / 3600000));
    const x = (left + (w * hours) / 24).toFixed(1);
    const y = (top + h * (1 - priceCents / list)).toFixed(1);
    $("now-line").setAttribute("x1", x);
    $("now-line").setAttribute("x2", x);
    $("now-dot").setAttribute("cx", x);
    $("now-dot").setAttribute("cy", y);
    // As _chart.html: below the dot near the top, left of it near the right edge.
    const below = +y - top < 28, leftward = +x > left + w - 60;
    const label = $("now-label");
    label.setAttribute("x", (leftward ? +x - 8 : +x + 8).toFixed(1));
    label.setAttribute("y", (below ? +y + 10 : +y - 10).toFixed(1));
    label.setAttribute("text-anchor", leftward ? "end" : "start");
    label.setAttribute("dominant-baseline", below ? "hanging" : "alphabetic");
  }

  async function refresh() {
    try {
      const [p, s] = await Promise.all([
        fetch("/api/pricing").then((r) => r.json()),
        fetch("/api/supply").then((r) => r.json()),
      ]);
      offset = Date.parse(p.now) - Date.now();
      midnight = Date.parse(p.key_expires_at);
      const price = parseFloat(p.price_cents_per_dollar);
      $("price").textContent = price.toFixed(2);
      $("discount").textContent = p.discount_percent; // as the server renders it: no re-rounding
      $("remaining").textContent = usd(s.remaining_cents);
      setLeft(s.remaining_cents);
      $("sold").textContent = usd(s.sold_cents);
      $("held").textContent = usd(s.reserved_cents);
      $("withheld").textContent = usd(s.withheld_cents);
      $("withheld-part").hidden = !s.withheld_cents;
      $("left").textContent = usd(s.remaining_cents);
      $("capacity").textContent = usd(s.capacity_cents);
      moveNow(Date.parse(p.now), price);
      $("live-status").textContent = "Prices update every few seconds.";
    } catch (e) {
      $("live-status").textContent = "Live prices are paused (connection lost); retrying…";
    }
  }

  // ---------------------------------------------------------------- the buy flow
  const form = $("buy-form"), quoteBox = $("quote"), errBox = $("buy-error");
  const custom = $("custom");
  let quote = null, quoteTimer = null;
  $("quote-btn").textContent = "Get my price";

  custom.addEventListener("input", () => { $("amount-custom").checked = true; });

  function showError(text) {
    errBox.textContent = text;
    errBox.hidden = false;
  }

  // The bounds of the label "How much credit? ($1.00 to $53.50)": the minimum order, and the
  // smaller of the maximum order and the credit left. Range errors use the same words
  // (pages.amount_error says the same for the form without JavaScript).
  const minCents = +form.dataset.minCents, maxOrderCents = +form.dataset.maxOrderCents;
  const maxCents = () => Math.min(maxOrderCents, Math.max(0, +form.dataset.leftCents));
  function setLeft(cents) {
    form.dataset.leftCents = String(cents);
    $("max-dollars").textContent = usd(maxCents());
  }
  function rangeError(soldOut) {
    if (maxCents() < minCents) {
      return "Today's credit is sold out. New credit comes at " + utcText(midnight) +
        "; come back then.";
    }
    const range = "enter an amount from " + usd(minCents) + " to " + usd(maxCents()) + ".";
    if (soldOut) return "Only " + usd(+form.dataset.leftCents) + " of credit is left today: " + range;
    return range.charAt(0).toUpperCase() + range.slice(1);
  }

  function amountCents() {
    const choice = (form.querySelector("input[name=amount]:checked") || {}).value || "custom";
    const raw = (choice === "custom" ? custom.value : choice).trim().replace(/^\$/, "");
    if (!/^\d+(\.\d{1,2})?$/.test(raw)) return null;
    const [whole, frac = ""] = raw.split(".");
    return parseInt(whole, 10) * 100 + parseInt((frac + "00").slice(0, 2), 10);
  }

  async function postJson(url, body, headers) {
    const r = await fetch(url, {
      method: "POST",
      headers: Object.assign({ "Content-Type": "application/json" }, headers || {}),
      body: JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      const error = data.error || {};
      throw Object.assign(new Error(error.message || "Something went wrong; try again."), {
        code: error.code, field: error.field, available: error.available_cents,
      });
    }
    return data;
  }

  function resetQuote() {
    clearInterval(quoteTimer);
    quote = null;
    quoteBox.hidden = true;
    form.hidden = false;
  }

  function showQuote(q) {
    quote = q;
    errBox.hidden = true;
    form.hidden = true;
    quoteBox.hidden = false;
    $("quote-credit").textContent = usd(q.credit_cents);
    $("quote-price").textContent = usd(q.price_cents);
    // The rate of the quote's moment, the same number (and rounding) as the live discount.
    $("quote-rate").textContent = q.price_cents_per_dollar;
    $("quote-discount").textContent = q.discount_percent + "\u00a0%";
    $("quote-expiry").textContent = q.key_expires_at.replace("T", " ").replace(":00Z", " UTC");
    const until = Date.parse(q.valid_until);
    // The server's times are whole seconds: never show more than the lock window itself.
    const ttl = Math.round((until - Date.parse(q.created_at)) / 1000);
    const step = () => {
      const left = Math.min(ttl, Math.max(0, Math.ceil((until - serverNow()) / 1000)));
      $("quote-countdown").textContent = String(left);
      if (left <= 0) {
        clearInterval(quoteTimer);
        resetQuote();
        showError("That price has expired. Press “Get my price” for a fresh one.");
      }
    };
    step();
    quoteTimer = setInterval(step, 250);
    $("order-btn").focus();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errBox.hidden = true;
    const cents = amountCents();
    if (cents === null || cents <= 0) {
      showError("Enter an amount in dollars, like 5 or 12.50.");
      custom.focus();
      return;
    }
    if (cents < minCents || cents > maxCents()) {
      showError(rangeError(false));
      return;
    }
    try {
      showQuote(await postJson("/api/quotes", { credit_cents: cents }));
    } catch (e) {
      if (e.code === "held_out") {
        if (typeof e.available === "number") setLeft(e.available);
        showError(e.message);
      } else if (e.code === "sold_out") {
        if (typeof e.available === "number") setLeft(e.available);
        showError(rangeError(true));
      } else if (e.code === "invalid_input" && e.field === "credit_cents") {
        showError(rangeError(false));
      } else {
        showError(e.message);
      }
    }
  });

  $("requote-btn").addEventListener("click", () => { resetQuote(); custom.focus(); });

  // A random UUID v4 (crypto.randomUUID needs a secure context; getRandomValues does not).
  function uuid4() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" +
      h.slice(16, 20) + "-" + h.slice(20);
  }

  $("order-btn").addEventListener("click", async () => {
    if (!quote) return;
    $("order-btn").disabled = true;
    // One key per quote: a retried click orders once, and the key is nobody else's.
    quote.idempotencyKey = quote.idempotencyKey || uuid4();
    const body = { quote_id: quote.quote_id };
    const hook = $("webhook-url").value.trim();
    if (hook) body.webhook_url = hook;
    try {
      const order = await postJson("/api/orders", body, { "Idempotency-Key": quote.idempotencyKey });
      sessionStorage.setItem("ct_order_" + order.order_id, order.order_token);
      // The webhook's signing secret is in this answer only: the order page shows it once.
      if (order.webhook_secret) {
        sessionStorage.setItem("ct_whsec_" + order.order_id, order.webhook_secret);
      }
      clearInterval(quoteTimer);
      window.location.assign(order.checkout_url);
    } catch (e) {
      $("order-btn").disabled = false;
      if (e.field === "webhook_url") {
        // Nothing was ordered: keep the price, let the buyer fix the URL (or clear it).
        showError(e.message);
        $("alerts-box").open = true;
        $("webhook-url").focus();
        return;
      }
      resetQuote();
      showError(e.message);
    }
  });

  tick();
  setInterval(tick, 1000);
  refresh();
  setInterval(refresh, 5000);
})();
