/* The conversation page: the whole history marked by author with delivery states, the AI's
 * suggestion and knowledge, the reply box, the ticket actions and timeline; kept live by the
 * socket (messages, delivery, state, ticket and suggestion events) without reloading. */
(function () {
  "use strict";
  const { config, t, h, url, api, report, banner, socket, duration, time, labelChip } = window.AgentDesk;
  const me = config.me;
  const id = JSON.parse(document.getElementById("page-config").textContent).conversation;
  const $ = (sel) => document.getElementById(sel);

  const state = {
    detail: null,        // the last conversation_detail from the server
    messages: new Map(), // id -> message, merged with live events
    arrived: new Map(),  // id -> performance.now() when the socket brought that message
    deliveries: new Map(), // message id -> {delivery, at}: the socket's latest delivery state
    suggestion: "",
    suggestionAt: 0,
    lost: false,         // no longer accessible to us (taken by someone else, or gone)
    pending: false,      // an action is running
    agents: [],
    labels: [],          // every label of the tenant (the picker's choices)
  };

  // --- server state in, merged with what the socket told us meanwhile ----------------------------

  /* A response computed before a live event arrived must not undo that event. */
  function apply(detail, startedAt) {
    if (!detail || detail.gone) {
      lose(t("conv.gone"), "info");
      return;
    }
    const merged = new Map();
    for (const message of detail.messages) merged.set(message.id, message);
    for (const [messageId, message] of state.messages) {
      if (!merged.has(messageId) && (state.arrived.get(messageId) || 0) > startedAt) merged.set(messageId, message);
    }
    for (const [messageId, live] of state.deliveries) {
      const message = merged.get(messageId);
      if (message && live.at > startedAt) message.delivery = live.delivery;
    }
    state.messages = new Map([...merged.entries()].sort((a, b) => a[0] - b[0]));
    if (state.suggestionAt <= startedAt) state.suggestion = detail.suggestion || "";
    state.detail = detail;
    if (state.lost) banner.clear("lost");
    state.lost = false;
    render();
  }

  async function refresh() {
    const startedAt = performance.now();
    try {
      apply(await api(url("detail", id)), startedAt);
    } catch (error) {
      if (error.status === 404) lose(t("error.not_found"), "error");
      else report(error, "refresh");
    }
  }

  function lose(text, kind) {
    state.lost = true;
    banner.show(text, { kind, key: "lost", link: { href: url("queue"), text: t("back_to_queue") }, timeout: 0 });
    render();
  }

  /* POST an action; the answer is the fresh conversation, shown at once (our socket gets no echo). */
  async function act(name, body, { done } = {}) {
    if (state.pending) return null;
    state.pending = true;
    render();
    const startedAt = performance.now();
    try {
      const detail = await api(url(name, id), { method: "POST", body: body || {} });
      banner.clear("action");
      apply(detail, startedAt);
      if (done) done(detail);
      return detail;
    } catch (error) {
      report(error, "action");
      if (error.status === 404) lose(t("error.not_found"), "error");
      else if (error.status === 409) refresh();
      return null;
    } finally {
      state.pending = false;
      render();
    }
  }

  // --- rendering ---------------------------------------------------------------------------------

  const OUTGOING = new Set(["ai", "knowledge", "fallback", "notice", "handoff", "agent", "api"]);

  function messageItem(message) {
    const delivery = message.delivery && OUTGOING.has(message.author)
      ? h("span.delivery", { "data-delivery": message.delivery }, t("delivery." + message.delivery)) : null;
    // A customer's sensitive words (the platform's and the tenant's lists), flagged for the agent.
    const words = (message.sensitive_words || []).join("、");
    const sensitive = words ? h("span.sensitive", {}, t("sensitive_words", { words })) : null;
    return h("li.msg", {
      "data-message": message.id, "data-author": message.author,
      class: `msg msg-${message.author} ${message.author === "customer" ? "in" : "out"}`,
    },
    h("div.meta", {},
      h("span.author", {}, t("author." + message.author)),
      h("time", { datetime: message.created_at }, time(message.created_at)),
      delivery, sensitive),
    message.media ? mediaItem(message) : h("div.text", {}, message.text));
  }

  // Browsers play mp3 but not WeCom's AMR voice: that one is offered as a download.
  const PLAYABLE_AUDIO = new Set(["audio/mpeg", "audio/mp3"]);

  /* A picture inline, a voice message or video to play (or download), a file to download; while the
     job is still fetching it from WeCom, or when it was refused, a line saying so. */
  function mediaItem(message) {
    const media = message.media;
    const href = message.media_url;
    if (media.status === "refused") {
      return h("div.media.media-refused", {}, t("media.refused." + media.kind), " ", h("small.muted", {}, media.error));
    }
    if (media.status !== "stored") return h("div.media.muted", {}, t("media.pending." + media.kind));
    if (!href) return h("div.text", {}, message.text); // a live line: its link comes with the next fetch
    const download = h("a.media-download", { href, download: media.name || "" },
      t("media.download." + media.kind) + (media.name ? ` (${media.name})` : ""));
    if (media.kind === "image") {
      return h("div.media", {}, h("a", { href, target: "_blank", rel: "noopener" },
        h("img.media-image", { src: href, alt: t("media.image"), loading: "lazy" })));
    }
    if (media.kind === "voice" && PLAYABLE_AUDIO.has(media.content_type)) {
      return h("div.media", {}, h("audio", { src: href, controls: true, preload: "none" }), download);
    }
    if (media.kind === "video") {
      return h("div.media", {}, h("video.media-video", { src: href, controls: true, preload: "none" }), download);
    }
    return h("div.media", {}, download);
  }

  function renderMessages() {
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    const items = [];
    let previous = null;
    for (const message of state.messages.values()) {
      const conversation = message.conversation ?? id;
      if (previous !== null && conversation !== previous) {
        items.push(h("li.divider", {}, conversation === id ? "" : t("conv.earlier")));
      }
      if (previous === null && conversation !== id) items.push(h("li.divider", {}, t("conv.earlier")));
      previous = conversation;
      items.push(messageItem(message));
    }
    list.replaceChildren(...items);
    if (atBottom || !list.dataset.rendered) list.scrollTop = list.scrollHeight;
    list.dataset.rendered = "1";
  }

  function renderTicket(ticket) {
    $("ticket-id").textContent = ticket ? "#" + ticket.id : "";
    const status = $("ticket-status");
    status.textContent = ticket ? t("status." + ticket.status) : "—";
    status.dataset.status = ticket ? ticket.status : "";
    $("ticket-priority").textContent = ticket ? t("priority." + ticket.priority) : "—";
    $("ticket-reason").textContent = ticket ? ticket.reason : "—";
    $("ticket-assignee").textContent = (ticket && ticket.assignee) || "—";
    $("ticket-team").textContent = (ticket && ticket.team && ticket.team.name) || "—";
    renderCsat(ticket && ticket.csat);
    renderSla($("sla-first"), ticket && ticket.first_response_due_at, ticket && ticket.first_response_breached,
      ticket && Boolean(ticket.first_responded_at));  // delivered, not merely written
    renderSla($("sla-resolution"), ticket && ticket.resolution_due_at, ticket && ticket.resolution_breached,
      ticket && ["resolved", "closed"].includes(ticket.status));
  }

  // The satisfaction survey after the close (tickets/csat.py): the customer's answer, or where it stands.
  function renderCsat(csat) {
    const cell = $("ticket-csat");
    cell.dataset.status = csat ? csat.status : "";
    if (!csat) cell.replaceChildren("—");
    else if (csat.status === "answered") {
      cell.replaceChildren(h("span.badge.ok", { "data-score": csat.score },
        t("csat.answered", { label: csat.label, score: csat.score, scale: csat.scale })));
    } else if (csat.status === "sent") cell.replaceChildren(h("span.muted", {}, t("csat.sent")));
    else cell.replaceChildren(h("span.muted", {}, t("csat.not_sent", { reason: t("csat.reason." + csat.reason) })));
  }

  function renderSla(cell, due, breached, done) {
    if (!due) {
      cell.replaceChildren("—");
      return;
    }
    const left = Date.parse(due) - Date.now();
    let note;
    if (breached) note = h("span.badge.breach", { "data-sla": "breached" }, t("sla.breached"));
    else if (done) note = h("span.badge.ok", { "data-sla": "met" }, t("sla.met"));
    else if (left < 0) note = h("span.badge.breach", { "data-sla": "overdue" }, t("sla.overdue", { duration: duration(-left) }));
    else note = h("span.muted", { "data-sla": "due" }, t("sla.due_in", { duration: duration(left) }));
    cell.replaceChildren(h("span.nowrap", {}, time(due)), " ", note);
  }

  function eventText(event) {
    const d = event.detail || {};
    switch (event.kind) {
      case "opened":
        return t("event.opened", { reason: t("reason." + d.reason) });
      case "status":
        return t("event.status", { from: t("status." + d.from), to: t("status." + d.to) });
      case "sla_breached":
        return t("event.sla_breached", { target: t("sla." + d.target) });
      case "csat_not_sent":
        return t("event.csat_not_sent", { reason: t("csat.reason." + d.reason) });
      default: {
        const key = "event." + event.kind;
        if (t.has(key)) return t(key, d);
        return event.kind + " " + JSON.stringify(d);
      }
    }
  }

  function renderTimeline(ticket) {
    const list = $("timeline");
    if (!ticket || !ticket.events.length) {
      list.replaceChildren(h("li.empty", {}, t("conv.no_events")));
      return;
    }
    list.replaceChildren(...ticket.events.map((event) => h("li", {
      "data-kind": event.kind, "data-to": event.kind === "status" ? event.detail.to : null,
      class: event.kind === "note" ? "note" : (event.kind.includes("fail") || event.kind === "sla_breached" ? "bad" : null),
    },
    h("time", { datetime: event.at }, time(event.at)),
    h("span.actor", {}, event.actor || t("conv.system")),
    h("span.what", {}, eventText(event)))));
  }

  function renderKnowledge(entries) {
    const list = $("knowledge");
    if (!entries.length) {
      list.replaceChildren(h("li.empty", {}, t("conv.no_knowledge")));
      return;
    }
    list.replaceChildren(...entries.map((entry) => h("li", { "data-entry": entry.id },
      h("div.kq", {}, entry.question, " ", h("span.muted.small", {}, t("conv.score", { score: entry.score }))),
      h("div.ka", {}, entry.answer),
      h("button.small.use-knowledge", { type: "button", onclick: () => useText(entry.answer) }, t("conv.use")))));
  }

  function renderPromote() {
    const questions = [...state.messages.values()].filter((m) => m.author === "customer");
    const answers = [...state.messages.values()].filter((m) => m.author === "agent");
    const card = $("promote-card");
    card.hidden = !questions.length || !answers.length || state.lost;
    if (card.hidden) return;
    fillPick($("promote-question-pick"), questions, $("promote-question"));
    fillPick($("promote-answer-pick"), answers, $("promote-answer"));
  }

  /* A select of messages that fills its textarea; the last one is chosen until the agent picks. */
  function fillPick(select, messages, textarea) {
    const chosen = select.dataset.picked;
    const signature = messages.map((m) => m.id).join(",");
    if (select.dataset.signature === signature) return;
    select.dataset.signature = signature;
    select.replaceChildren(...messages.map((m) => h("option", { value: m.id },
      m.text.length > 40 ? m.text.slice(0, 40) + "…" : m.text)));
    const keep = chosen && messages.some((m) => String(m.id) === chosen);
    select.value = keep ? chosen : String(messages[messages.length - 1].id);
    if (!keep) textarea.value = messages[messages.length - 1].text;
  }

  /* What the services let us do: the owner and supervisors act; after handing back (or closing), the
   * agent who still holds the ticket may resolve, close, note and promote; anyone may claim. */
  function roles(detail) {
    const owner = me.supervisor || detail.agent === me.username;
    const holder = owner || (["bot", "closed"].includes(detail.state) && !!detail.ticket &&
      detail.ticket.assignee === me.username);
    return { owner, holder };
  }

  function renderActions(detail) {
    const ticket = detail.ticket;
    const canAct = !state.lost && !state.pending;
    const status = ticket ? ticket.status : null;
    const open = detail.state !== "closed";
    const { owner, holder } = roles(detail);
    // WeCom servicers mode: WeCom's servicers answer in the WeCom client; this screen only watches.
    const watchOnly = !!detail.servicers_mode;
    const show = {
      claim: detail.state === "waiting_human" && !watchOnly,
      "hand-back": detail.state === "human" && owner && !watchOnly,
      "mark-pending": status === "assigned" && open && holder,
      reopen: ["pending_customer", "resolved"].includes(status) && open && holder,
      resolve: ["open", "assigned", "pending_customer"].includes(status) && holder,
      close: (open || status !== "closed") && holder,
    };
    for (const [button, visible] of Object.entries(show)) {
      $(button).hidden = !visible;
      $(button).disabled = !canAct;
    }
    const canReply = detail.state === "human" && owner && canAct && !watchOnly;
    $("reply-text").disabled = detail.state !== "human" || !owner || state.lost || watchOnly;
    $("send").disabled = !canReply;
    $("attach").disabled = !canReply;
    $("use-suggestion").disabled = !canReply || !state.suggestion;
    let hint = "";
    if (watchOnly) {
      hint = t("conv.servicers_mode");
      if (!state.servicersNoticeShown) banner.notice(hint, { key: "servicers-mode", timeout: 0 });
      state.servicersNoticeShown = true;
    } else if (detail.state === "waiting_human") hint = t("conv.claim_first");
    else if (detail.state === "closed") hint = t("conv.closed");
    else if (detail.state === "bot") hint = t("state.bot");
    $("reply-hint").textContent = hint;
    renderLimits(detail.limits, detail.state === "human");
  }

  // WeCom's limits for this customer (conversations/services/reply_limits.py), refreshed with the detail.
  function renderLimits(limits, shown) {
    const cell = $("reply-limits");
    cell.dataset.refusal = (limits && limits.refusal) || "";
    if (!limits || !shown) { cell.textContent = ""; return; }
    const parts = [];
    if (limits.refusal) parts.push(t("limits." + limits.refusal));
    if (limits.window_ends_at) {
      const left = Math.max(0, (Date.parse(limits.window_ends_at) - Date.now()) / 1000);
      parts.push(t("limits.window", { duration: duration(left) }));
    }
    if (limits.replies_left !== null && limits.replies_left !== undefined) {
      parts.push(t("limits.replies", { n: limits.replies_left }));
    }
    if (limits.per_minute_left !== null && limits.per_minute_left !== undefined) {
      parts.push(t("limits.per_minute", { n: limits.per_minute_left }));
    }
    cell.textContent = parts.join(" · ");
    cell.classList.toggle("bad", Boolean(limits.refusal));
  }

  /* The conversation's labels as chips, each removable, and a picker of the others (anyone who sees the
     conversation may label it: docs/AGENTS.md, "Labels and customer profiles"). */
  function renderLabels(detail) {
    const current = detail.labels || [];
    const canAct = !state.lost && !state.pending;
    $("label-chips").replaceChildren(...current.map((label) => labelChip(label,
      h("button.label-remove", {
        type: "button", disabled: !canAct, "aria-label": t("labels.remove", { label: label.name }),
        onclick: () => act("labelRemove", { label: label.id }),
      }, "×"))));
    const pick = $("label-pick");
    const others = state.labels.filter((label) => !current.some((c) => c.id === label.id));
    const signature = others.map((label) => label.id + label.name).join(",");
    if (pick.dataset.signature !== signature) {
      pick.dataset.signature = signature;
      pick.replaceChildren(h("option", { value: "" }, state.labels.length ? t("labels.add") : t("labels.none_defined")),
        ...others.map((label) => h("option", { value: label.id }, label.name)));
    }
    pick.disabled = !canAct || !others.length;
  }

  async function loadLabels() {
    try {
      state.labels = (await api(url("labels"))).labels;
      if (state.detail) renderLabels(state.detail);
    } catch (error) {
      report(error);
    }
  }

  function render() {
    const detail = state.detail;
    if (!detail) return;
    $("customer").textContent = detail.customer;
    $("channel").textContent = detail.channel;
    const badge = $("state");
    badge.dataset.state = detail.state;
    badge.textContent = t("state." + detail.state);
    $("owner").textContent = detail.agent || "";
    renderMessages();
    $("suggestion").textContent = state.suggestion || t("conv.no_suggestion");
    $("suggestion").classList.toggle("muted", !state.suggestion);
    renderKnowledge(detail.knowledge || []);
    renderTicket(detail.ticket);
    renderTimeline(detail.ticket);
    renderPromote();
    renderActions(detail);
    const { holder } = roles(detail);
    $("note-form").hidden = !holder || !detail.ticket;
    $("add-note").disabled = state.lost || state.pending;
    if (!holder) $("promote-card").hidden = true;
    $("promote").disabled = state.lost || state.pending;
    renderLabels(detail);
    renderReassign();
  }

  function renderReassign() {
    const select = $("reassign-agent");
    if (!select) return;
    const signature = state.agents.map((a) => a.id + a.presence).join(",");
    if (select.dataset.signature === signature) return;
    select.dataset.signature = signature;
    select.replaceChildren(...state.agents.map((a) => h("option", { value: a.id },
      `${a.name} · ${t("presence." + a.presence)}`)));
  }

  function useText(text) {
    const box = $("reply-text");
    box.value = text;
    box.focus();
  }

  // --- user actions ------------------------------------------------------------------------------

  $("actions").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    if (!button) return;
    switch (button.dataset.action) {
      case "claim":
        act("claim");
        break;
      case "hand-back":
        act("handBack", {}, { done: () => banner.notice(t("conv.handed_back"), { key: "action-done" }) });
        break;
      case "pending":
        act("status", { status: "pending_customer" });
        break;
      case "reopen":
        act("status", { status: "assigned" });
        break;
      case "resolve":
        act("status", { status: "resolved" });
        break;
      case "close":
        act("close");
        break;
      default:
        break;
    }
  });

  $("reply-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const box = $("reply-text");
    const text = box.value.trim();
    if (!text) return;
    const canned = box.dataset.canned; // a canned reply picked with "/" (canned.js): its attachment goes too
    const sent = await act("reply", canned ? { text, canned: Number(canned) } : { text });
    if (sent) {
      box.value = "";
      e.target.dispatchEvent(new Event("canned:sent"));
    }
    box.focus();
  });
  // Pictures and files: checked here for a quick answer, and again by the server (the same limits).
  $("attach").addEventListener("click", () => $("attach-file").click());
  $("attach-file").addEventListener("change", async () => {
    const input = $("attach-file");
    const file = input.files[0];
    input.value = "";
    if (!file) return;
    if (file.size > config.attachmentMaxBytes) {
      banner.show(t("media.too_large", { name: file.name, mb: Math.round(config.attachmentMaxBytes / 1048576) }),
        { kind: "error", key: "action" });
      return;
    }
    const body = new FormData();
    body.append("file", file, file.name);
    await act("attach", body);
  });
  $("reply-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      $("reply-form").requestSubmit();
    }
  });
  $("use-suggestion").addEventListener("click", () => useText(state.suggestion));
  $("label-pick").addEventListener("change", () => {
    const label = Number($("label-pick").value);
    $("label-pick").value = "";
    if (label) act("labelAdd", { label });
  });
  $("label-pick").addEventListener("focus", loadLabels); // labels an operator created since the page loaded

  $("note-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const box = $("note-text");
    if (!box.value.trim()) return;
    if (await act("note", { text: box.value })) {
      box.value = "";
      banner.notice(t("conv.note_added"), { key: "action-done" });
    }
  });

  for (const [pick, area] of [["promote-question-pick", "promote-question"], ["promote-answer-pick", "promote-answer"]]) {
    $(pick).addEventListener("change", () => {
      $(pick).dataset.picked = $(pick).value;
      const message = state.messages.get(Number($(pick).value));
      if (message) $(area).value = message.text;
    });
  }
  $("promote-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { question: $("promote-question").value, answer: $("promote-answer").value };
    if (await act("promote", body)) banner.notice(t("conv.promoted"), { key: "action-done" });
  });

  const reassignForm = $("reassign-form");
  if (reassignForm) {
    reassignForm.addEventListener("submit", async (e) => {
      e.preventDefault();
      const agent = state.agents.find((a) => String(a.id) === $("reassign-agent").value);
      if (!agent) return;
      if (await act("reassign", { agent: agent.id })) banner.notice(t("conv.reassigned", { agent: agent.name }));
    });
  }

  async function loadAgents() {
    if (!me.supervisor) return;
    try {
      state.agents = (await api(url("queueApi"))).agents;
      renderReassign();
    } catch (error) {
      report(error);
    }
  }

  // --- live events -------------------------------------------------------------------------------

  socket.on((event) => {
    if (event.conversation !== undefined && event.conversation !== id) {
      if (event.type === "offer") {
        banner.notice(t("queue.offer", { customer: "#" + event.conversation }),
          { link: { href: url("page", event.conversation), text: t("queue.open") } });
      }
      return;
    }
    const now = performance.now();
    switch (event.type) {
      case "message":
        state.messages.set(event.message.id, { ...event.message, conversation: id });
        state.arrived.set(event.message.id, now);
        render();
        if (event.message.author === "customer") refresh(); // knowledge and suggestion follow the last question
        break;
      case "media": // a customer's picture or file is stored (or refused): fetch its line again
        refresh();
        break;
      case "delivery": {
        state.deliveries.set(event.message, { delivery: event.delivery, at: now });
        const message = state.messages.get(event.message);
        if (message) {
          message.delivery = event.delivery;
          render();
        }
        break;
      }
      case "suggestion":
        state.suggestion = event.text || "";
        state.suggestionAt = now;
        render();
        break;
      case "state":
        if (event.state === "human" && event.agent && event.agent !== me.name && !me.supervisor) {
          // Someone else took it: we can no longer see it, so do not ask the server.
          state.detail = { ...state.detail, state: event.state, agent: event.agent };
          lose(t("conv.taken_by", { agent: event.agent }), "info");
        } else {
          refresh();
        }
        break;
      case "watching": // in the conversation's group from now on: what committed before is in this fetch
      case "ticket":
      case "labels": // a colleague labelled it
      case "profile": // WeCom gave the customer's name (profile.js redraws its panel)
      case "error": // e.g. WeCom refused a session change: the timeline has the details
        refresh();
        break;
      default:
        break;
    }
  });
  socket.onReady(() => {
    // The transcript is fetched when the server says the socket watches ("watching" above), not now: a
    // message committed between a fetch now and the join would reach neither (also after a reconnect).
    socket.send({ type: "watch", conversation: id });
  });

  // SLA countdowns tick on their own.
  setInterval(() => {
    if (state.detail) renderTicket(state.detail.ticket);
  }, 15000);

  loadAgents();
  loadLabels();
  socket.connect();
})();
