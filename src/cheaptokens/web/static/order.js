// The order/key page: reads the order token from the URL fragment (#token=...) or
// sessionStorage (never from a query or path), follows the order through the JSON API,
// shows the key once, fills it into the samples, and meters the key's usage.
"use strict";
(function () {
  const root = document.getElementById("order");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const orderId = root.dataset.orderId;
  const placeholder = root.dataset.placeholder;
  // Whole cents to "5.00" and "$5.00" (integers only, as the server's money.format_usd).
  const dollars = (cents) => {
    const c = Math.abs(Math.round(cents));
    return Math.floor(c / 100).toLocaleString("en-US") + "." + String(c % 100).padStart(2, "0");
  };
  const usd = (cents) => (cents < 0 ? "-$" : "$") + dollars(cents);

  // Copy buttons work in both modes.
  document.querySelectorAll("button.copy").forEach((btn) => {
    btn.hidden = false;
    btn.addEventListener("click", async () => {
      const target = $(btn.dataset.copyTarget);
      const el = target && target.tagName === "CODE" ? target : target.nextElementSibling.querySelector("code");
      const text = el.textContent;
      try {
        await navigator.clipboard.writeText(text);
      } catch (e) {
        const range = document.createRange();
        range.selectNodeContents(el);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        document.execCommand && document.execCommand("copy");
      }
      const old = btn.textContent;
      btn.textContent = "Copied";
      setTimeout(() => { btn.textContent = old; }, 1500);
    });
  });
  if (root.dataset.server === "1") return; // the server already rendered this order

  const storeKey = "ct_order_" + orderId;
  const fromHash = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (fromHash) sessionStorage.setItem(storeKey, fromHash);
  const token = fromHash || sessionStorage.getItem(storeKey);
  const message = $("order-message");
  if (!token) {
    $("need-token").hidden = false;
    message.textContent = "This page needs your private order link.";
    return;
  }
  $("need-token").hidden = true;
  const link = window.location.origin + "/orders/" + orderId + "#token=" + token;
  if (!fromHash) history.replaceState(null, "", window.location.pathname + window.location.search + "#token=" + token);
  $("secret-link").value = link;
  $("secret-link-panel").hidden = false;
  const auth = { Authorization: "Bearer " + token };
  let order = null;

  function setStep(done, current) {
    document.querySelectorAll("#progress li").forEach((li) => {
      li.classList.toggle("done", done.includes(li.dataset.step));
      li.classList.toggle("current", li.dataset.step === current);
    });
  }

  // The samples as rendered (with the placeholder), to fill in the key or put it back.
  const sampleTexts = new Map();
  document.querySelectorAll("code.sample").forEach((c) => sampleTexts.set(c, c.textContent));

  function fillSamples(key) {
    sampleTexts.forEach((text, c) => {
      c.textContent = key ? text.split(placeholder).join(key) : text;
    });
  }

  function render(o) {
    order = o;
    message.textContent = o.message;
    // A key that could not spend what it held was replaced: say why, and what was kept.
    const why = $("replaced");
    why.hidden = !o.replacement;
    if (o.replacement) {
      why.textContent = "Why your key changed: " + o.replacement.reason + ". Credit the old key " +
        "used: " + usd(o.replacement.spent_before_cents) + "." +
        (o.replacement.refund_due_cents !== null
          ? " No account had credit for a new key, so " + usd(o.replacement.refund_due_cents) +
            " is refunded."
          : " The old key no longer works.");
    }
    const s = o.status;
    if (s === "awaiting_payment") setStep(["ordered"], "paid");
    else if (s === "paid") setStep(["ordered", "paid"], "key");
    else if (s === "fulfilled" || s === "expired") setStep(["ordered", "paid", "key", "ready"], null);
    else setStep(["ordered"], null);
    if (s === "awaiting_payment" && o.checkout_url) {
      message.innerHTML = "";
      message.append("Waiting for your payment. ");
      const a = document.createElement("a");
      a.href = o.checkout_url;
      a.textContent = "Go to checkout";
      message.append(a);
    }
    // Declined or lapsed checkout: no key, no samples; offer the same amount again.
    $("try-again").hidden = s !== "cancelled";
    if (s === "cancelled") {
      const again = $("try-again-link");
      again.href = "/?amount=" + dollars(o.credit_cents).replace(/,/g, "");
      again.textContent = "Try again with " + usd(o.credit_cents) + " of credit";
    }
    // Top up and reissue: only while the key is live.
    const live = s === "fulfilled";
    $("topup-panel").hidden = !live;
    $("reissue-panel").hidden = !live;
    const list = $("topups");
    list.innerHTML = "";
    (o.topups || []).forEach((t) => {
      const li = document.createElement("li");
      li.textContent = usd(t.credit_cents) + " for " + usd(t.price_cents) + ": " + t.status +
        (t.failure_reason ? " (" + t.failure_reason + ")" : "");
      list.append(li);
    });
    $("samples").hidden = s !== "fulfilled";
    $("samples-note").hidden = s !== "fulfilled";
    const key = o.key;
    if (key && key.api_key) {
      $("api-key").textContent = key.api_key;
      $("key-panel").hidden = false;
      $("key-saved").hidden = true;
      fillSamples(key.api_key);
    } else if (key && key.last6) {
      // Saved (or expired): the shop no longer has the key; forget it on the page too.
      $("key-panel").hidden = true;
      $("api-key").textContent = "";
      fillSamples(null);
      $("last6").textContent = "…" + key.last6;
      $("key-saved").hidden = false;
    }
    if (key && key.expires_at) {
      document.querySelectorAll(".expires").forEach((e) => {
        e.textContent = key.expires_at.replace("T", " ").replace(":00Z", " UTC");
      });
    }
  }

  async function poll() {
    try {
      const r = await fetch("/api/orders/" + orderId, { headers: auth });
      if (r.status === 404) {
        message.textContent = "This order link is not valid. Check that you copied the whole link.";
        return;
      }
      render(await r.json());
    } catch (e) {
      message.textContent = "Connection lost; retrying…";
    }
    if (order && order.webhook_url && !deliveriesStarted) {
      deliveriesStarted = true;
      deliveries();
    }
    const applying = order && (order.topups || []).some((t) => t.status === "paid");
    if (!order || applying || ["awaiting_payment", "paid", "replacing"].includes(order.status)) {
      setTimeout(poll, 1000);
    } else if (order.status === "fulfilled" || order.status === "expired") {
      usage();
    }
  }

  // ------------------------------------------------------------------ the live meter
  // Polls GET /api/orders/{id}/usage (every 5 s while the page is visible, 30 s when not) and
  // shows credit left, time left, the burn rate and when the credit runs out at that rate.
  const readings = []; // [time ms, used cents] of this key, the last ten minutes
  const hhmm = (ms) => new Date(ms).toISOString().slice(11, 16);
  const every = () => (document.visibilityState === "hidden" ? 30000 : 5000);
  let usageTimer = null;

  function burnRate(u, at) {
    // The page's own readings when they show spending over 20 s or more (the recent rate);
    // else the server's average since the key was made.
    if (readings.length && u.used_cents < readings[readings.length - 1][1]) readings.length = 0;
    readings.push([at, u.used_cents]);
    while (readings.length && at - readings[0][0] > 600000) readings.shift();
    const [t0, used0] = readings[0];
    if (at - t0 >= 20000 && u.used_cents > used0) {
      return (u.used_cents - used0) / ((at - t0) / 3600000);
    }
    return u.burn_cents_per_hour || null;
  }

  function showUsage(u) {
    $("usage").hidden = false;
    const meter = $("usage-meter");
    meter.max = u.credit_cents;
    meter.value = u.used_cents;
    $("usage-used").textContent = usd(u.used_cents);
    $("usage-left").textContent = usd(u.remaining_cents);
    const h = Math.floor(u.seconds_left / 3600), m = Math.floor((u.seconds_left % 3600) / 60);
    $("usage-time").textContent = h + " h " + m + " min";
    const at = u.checked_at ? Date.parse(u.checked_at) : Date.now();
    const rate = u.remaining_cents > 0 || u.used_cents > 0 ? burnRate(u, at) : null;
    if (rate && rate > 0) {
      $("usage-rate").textContent = usd(Math.ceil(rate)) + " per hour";
      const end = u.expires_at ? Date.parse(u.expires_at) : at + u.seconds_left * 1000;
      const hoursLeft = Math.max(0, (end - at) / 3600000);
      const projected = u.used_cents + rate * hoursLeft;
      const pct = Math.min(100, Math.round((100 * projected) / Math.max(1, u.credit_cents)));
      const outAt = at + (u.remaining_cents / rate) * 3600000;
      let text = "At this rate you will use " + pct + " % of your credit before midnight: ";
      if (u.remaining_cents <= 0) text = "Your credit is used up.";
      else if (outAt < end) text += "it runs out at " + hhmm(outAt) + " UTC.";
      else text += "it lasts until midnight.";
      $("usage-forecast").textContent = text;
    } else {
      $("usage-rate").textContent = "no use yet";
      $("usage-forecast").textContent = "Make a call and this meter shows your burn rate.";
    }
    $("usage-updated").textContent = "Updated " + hhmm(at) + ":" +
      new Date(at).toISOString().slice(17, 19) + " UTC" + (u.live ? "" : " (last reading)") + ".";
  }

  async function usage() {
    try {
      const r = await fetch("/api/orders/" + orderId + "/usage", { headers: auth });
      if (r.ok) showUsage(await r.json());
    } catch (e) { /* keep the last reading */ }
    if (order && order.status === "fulfilled") usageTimer = setTimeout(usage, every());
  }

  document.addEventListener("visibilitychange", () => {
    // Back on the page: read at once rather than wait out the slow hidden-page interval.
    if (document.visibilityState === "visible" && usageTimer && order && order.status === "fulfilled") {
      clearTimeout(usageTimer);
      usage();
    }
  });

  // ------------------------------------------------------------------ alerts
  // The webhook's signing secret, from the order's answer (home.js kept it for this page):
  // shown until the buyer says it is saved, then forgotten by the browser too.
  const secretKey = "ct_whsec_" + orderId;
  const secret = sessionStorage.getItem(secretKey);
  if (secret) {
    $("webhook-secret").textContent = secret;
    $("webhook-secret-panel").hidden = false;
  }
  $("whsec-saved").addEventListener("click", () => {
    sessionStorage.removeItem(secretKey);
    $("webhook-secret").textContent = "";
    $("webhook-secret-panel").hidden = true;
  });

  const detail = (d) => ("threshold" in d ? " " + d.threshold + " %" : "minutes" in d
    ? " " + d.minutes + " min" : "stage" in d ? " " + d.stage : "");
  const clock = (iso) => (iso ? iso.slice(11, 19) : "");
  let deliveriesTimer = null, deliveriesStarted = false;

  function showDeliveries(log) {
    $("alerts").hidden = !log.webhook_url;
    $("webhook-target").textContent = log.webhook_url || "";
    const body = $("deliveries-body");
    body.textContent = "";
    log.events.forEach((e) => {
      const tr = document.createElement("tr");
      tr.dataset.event = e.id;
      tr.dataset.status = e.status;
      const kind = document.createElement("td");
      const code = document.createElement("code");
      code.textContent = e.type;
      kind.append(code, detail(e.data || {}));
      let state = e.status + (e.attempts > 1 ? " after " + e.attempts + " tries" : "");
      if (e.next_attempt_at && e.attempts) state += ", next try " + clock(e.next_attempt_at);
      const last = e.tries[e.tries.length - 1];
      const answer = last
        ? (last.status_code === null ? "no answer" : String(last.status_code)) +
          (last.error ? " (" + last.error + ")" : "") + ", " + last.duration_ms + " ms"
        : "not yet";
      [clock(e.created_at), state, answer].forEach((text) => {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      });
      tr.prepend(kind);
      body.append(tr);
    });
    $("deliveries-empty").hidden = log.events.length > 0;
  }

  async function deliveries() {
    clearTimeout(deliveriesTimer);
    try {
      const r = await fetch("/api/orders/" + orderId + "/deliveries", { headers: auth });
      if (r.ok) showDeliveries(await r.json());
    } catch (e) { /* keep the last log */ }
    if (order && !["expired", "refunded", "cancelled", "failed"].includes(order.status)) {
      deliveriesTimer = setTimeout(deliveries, every());
    }
  }

  $("saved-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await fetch("/api/orders/" + orderId + "/received", { method: "POST", headers: auth });
    if (r.ok) {
      render(await r.json());
      $("key-saved").focus && $("saved-title").scrollIntoView();
    } else {
      message.textContent = "Could not confirm yet; try again in a moment.";
    }
  });

  // A random UUID v4 (crypto.randomUUID needs a secure context; getRandomValues does not).
  function uuid4() {
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" +
      h.slice(16, 20) + "-" + h.slice(20);
  }

  $("topup-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = $("topup-error");
    box.hidden = true;
    const raw = $("topup-amount").value.trim().replace(/^\$/, "");
    const cents = Math.round(parseFloat(raw) * 100);
    if (!(cents > 0) || Math.abs(parseFloat(raw) * 100 - cents) > 1e-6) {
      box.textContent = "Enter an amount in dollars, like 5 or 12.50.";
      box.hidden = false;
      return;
    }
    $("topup-btn").disabled = true;
    try {
      const r = await fetch("/api/orders/" + orderId + "/topups", {
        method: "POST",
        headers: { ...auth, "Content-Type": "application/json", "Idempotency-Key": uuid4() },
        body: JSON.stringify({ credit_cents: cents }),
      });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error ? body.error.message : "the top-up was refused");
      window.location.assign(body.checkout_url);
    } catch (e) {
      box.textContent = "Could not top up: " + e.message;
      box.hidden = false;
      $("topup-btn").disabled = false;
    }
  });

  $("reissue-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = $("reissue-error");
    box.hidden = true;
    if (!window.confirm("Your current key stops working at once. Get a new key?")) return;
    $("reissue-btn").disabled = true;
    try {
      const r = await fetch("/api/orders/" + orderId + "/reissue", { method: "POST", headers: auth });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error ? body.error.message : "refused");
      render(body);
      poll();
    } catch (e) {
      box.textContent = "Could not make a new key: " + e.message;
      box.hidden = false;
    }
    $("reissue-btn").disabled = false;
  });

  poll();
})();
