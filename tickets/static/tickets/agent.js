/* Agent desk, shared by the queue and conversation pages: translated strings, the JSON API
 * (CSRF and our socket id on every write), the error banner, and the agent WebSocket
 * (heartbeats for presence, reconnect with backoff). Plain JavaScript, no build step. */
(function () {
  "use strict";

  const readJSON = (id) => JSON.parse(document.getElementById(id).textContent);
  const config = readJSON("agent-config");
  const strings = readJSON("agent-i18n");
  const lang = document.documentElement.lang || "zh-hans";

  /* t("key", {name: value}): the server-translated string, with {name} filled in. */
  function t(key, params) {
    const text = Object.prototype.hasOwnProperty.call(strings, key) ? strings[key] : key;
    return params ? text.replace(/\{(\w+)\}/g, (_, name) => (params[name] ?? "")) : text;
  }

  t.has = (key) => Object.prototype.hasOwnProperty.call(strings, key);

  /* h("tag.class", {attr: value, onclick: fn}, child, ...): a DOM element; text is never parsed as HTML. */
  function h(spec, attrs, ...children) {
    const [tag, ...classes] = spec.split(".");
    const el = document.createElement(tag);
    if (classes.length) el.className = classes.join(" ");
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  /* Where the socket opens (settings.WEBSOCKET_BASE_URL, docs/DEPLOYMENT.md "Processes"): "" is this page's
   * origin; ":8001" this page's host name on port 8001 (`make run`: gunicorn serves the page, uvicorn the
   * socket, and the session cookie, per host and not per port, goes along); else an origin of its own. */
  function socketOrigin(base) {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    if (!base) return scheme + location.host;
    if (base.startsWith(":")) return scheme + location.hostname + base;
    return base.replace(/^http(s?):\/\//, "ws$1://").replace(/\/+$/, "");
  }

  /* A URL of the config with the conversation id in place of the 0 that {% url %} was given. */
  function url(name, id) {
    const template = config.urls[name];
    if (id === undefined) return template;
    const at = template.lastIndexOf("/0/");
    return template.slice(0, at) + "/" + encodeURIComponent(id) + "/" + template.slice(at + 3);
  }

  // --- banner: errors stay until dismissed, notices fade ------------------------------------------

  const bannerEl = document.getElementById("banner");
  const banner = {
    show(text, { kind = "error", key = null, link = null, timeout = null } = {}) {
      if (key) this.clear(key);
      const item = h("div.banner-item", { "data-kind": kind, "data-key": key },
        h("span.banner-text", {}, text),
        link ? h("a", { href: link.href }, link.text) : null,
        h("button.banner-close", { type: "button", "aria-label": t("dismiss"), onclick: () => item.remove() }, "×"));
      bannerEl.append(item);
      while (bannerEl.children.length > 4) bannerEl.firstElementChild.remove();
      const wait = timeout ?? (kind === "error" ? null : 8000);
      if (wait) setTimeout(() => item.remove(), wait);
      return item;
    },
    notice(text, options = {}) {
      return this.show(text, { kind: "info", ...options });
    },
    clear(key) {
      for (const item of bannerEl.querySelectorAll(".banner-item")) {
        if (!key || item.dataset.key === key) item.remove();
      }
    },
  };

  // --- JSON API -----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, message, data) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
    // The token the page was rendered with matches the cookie the server reads; the cookie is a fallback.
    return (meta && meta.content) || (cookie && decodeURIComponent(cookie.split("=")[1])) || "";
  }

  async function api(target, { method = "GET", body } = {}) {
    const headers = { Accept: "application/json" };
    const form = body instanceof FormData; // an attachment: the browser sets the multipart boundary
    if (method !== "GET") {
      if (!form) headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = csrfToken();
      if (socket.id) headers["X-Agent-Socket"] = socket.id; // our own socket gets no echo
    }
    let response;
    try {
      response = await fetch(target, {
        method, headers, credentials: "same-origin",
        body: body === undefined || form ? body : JSON.stringify(body),
      });
    } catch (_) {
      throw new ApiError(0, t("error.network"));
    }
    let data = null;
    try {
      data = await response.json();
    } catch (_) { /* 404 pages and proxies answer HTML */ }
    if (response.ok) return data;
    let message = data && typeof data.detail === "string" ? data.detail : null;
    if (!message && response.status === 404) message = t("error.not_found");
    if (response.status === 403) message = t("error.signed_out");
    throw new ApiError(response.status, message || t("error.server", { status: response.status }), data);
  }

  /* Show an API failure in the banner (a 403 gets a sign-in link). */
  function report(error, key) {
    if (error.status === 403) {
      banner.show(error.message, { key: "auth", link: { href: signInHref(), text: t("sign_in") } });
    } else {
      banner.show(error.message, { key: key || null });
    }
  }

  function signInHref() {
    return url("login") + "?next=" + encodeURIComponent(location.pathname + location.search);
  }

  // --- the agent WebSocket -------------------------------------------------------------------------

  const connEl = document.getElementById("connection");
  function setConnection(state) {
    if (!connEl) return;
    connEl.dataset.state = state;
    connEl.textContent = t("conn." + state);
  }

  const socket = {
    id: null,
    ws: null,
    attempts: 0,
    handlers: [],
    readyHandlers: [],
    heartbeat: null,
    retryTimer: null,
    closedAt: null,

    /* fn(event) for every server event; onReady(hello) after every (re)connect. */
    on(fn) { this.handlers.push(fn); },
    onReady(fn) { this.readyHandlers.push(fn); },

    send(message) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) {
        this.ws.send(JSON.stringify(message));
        return true;
      }
      return false;
    },

    connect() {
      clearTimeout(this.retryTimer);
      const path = config.ws.replace(/\/{2,}/g, "/");
      setConnection(this.attempts ? "reconnecting" : "connecting");
      const ws = new WebSocket(socketOrigin(config.wsBase) + path);
      this.ws = ws;
      ws.onmessage = (frame) => {
        let event;
        try {
          event = JSON.parse(frame.data);
        } catch (_) {
          return;
        }
        if (event.type === "hello") return this.hello(event);
        if (event.type === "error") {
          // Server-built: a refused watch, or WeCom refusing a step (e.g. 95016 for a 微信客服 session).
          const text = event.message === "conversation not found" ? t("error.not_found") : event.message;
          banner.show(text, { key: "socket-error" });
        }
        for (const fn of this.handlers) fn(event);
      };
      ws.onclose = () => this.dropped(ws);
    },

    hello(event) {
      this.id = event.socket;
      this.attempts = 0;
      banner.clear("connection");
      setConnection("live");
      clearInterval(this.heartbeat);
      const every = Math.max(5, Number(event.heartbeat_seconds) || 20) * 1000;
      this.heartbeat = setInterval(() => this.send({ type: "heartbeat" }), every);
      for (const fn of this.readyHandlers) fn(event);
    },

    dropped(ws) {
      if (ws !== this.ws) return;
      clearInterval(this.heartbeat);
      this.id = null;
      this.ws = null;
      this.attempts += 1;
      setConnection("reconnecting");
      // Backoff with jitter: 0.5 s, 1 s, 2 s ... up to 30 s, so a restarted server is not stormed.
      const delay = Math.min(30000, 500 * 2 ** (this.attempts - 1)) * (0.5 + Math.random() / 2);
      this.retryTimer = setTimeout(() => this.connect(), delay);
      if (this.attempts === 3) this.checkSession();
    },

    /* A refused handshake looks like any drop to the browser: ask the API whether we are signed in. */
    async checkSession() {
      try {
        await api(url("queueApi"));
      } catch (error) {
        if (error.status === 403) report(error);
      }
    },
  };

  window.addEventListener("online", () => {
    if (!socket.ws) socket.connect();
  });

  // --- formatting ---------------------------------------------------------------------------------

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return t("duration.s", { n: s });
    const min = Math.floor(s / 60);
    if (min < 60) return t("duration.min", { n: min });
    const hours = Math.floor(min / 60);
    if (hours < 24) return t("duration.h", { h: hours, m: min % 60 });
    return t("duration.d", { d: Math.floor(hours / 24), h: hours % 24 });
  }

  function time(iso) {
    if (!iso) return "";
    const date = new Date(iso);
    const today = new Date().toDateString() === date.toDateString();
    const options = today ? { hour: "2-digit", minute: "2-digit" }
      : { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" };
    try {
      return date.toLocaleString(lang, options);
    } catch (_) {
      return date.toLocaleString(undefined, options);
    }
  }

  function presenceBadge(status) {
    return h("span.presence-dot", { "data-presence": status }, t("presence." + status));
  }

  /* Keep a button from being pressed twice while its request runs. */
  async function busy(button, work) {
    if (button) button.disabled = true;
    document.body.classList.add("busy");
    try {
      return await work();
    } finally {
      if (button) button.disabled = false;
      document.body.classList.remove("busy");
    }
  }

  /* A label's chip: its colour (a #rrggbb the server validated) as a dot, then its name; `extra` (e.g. a
     remove button) after the name. */
  function labelChip(label, extra) {
    return h("span.label-chip", { "data-label": label.id, title: label.name },
      h("span.label-dot", { style: `background:${label.color}` }), label.name, extra || null);
  }

  window.AgentDesk = { config, t, h, url, api, ApiError, report, banner, socket, duration, time, presenceBadge, busy,
    labelChip };
})();
