/* Canned replies (快捷回复) in the reply box: "/" then letters lists the agent's own and the tenant's shared
 * replies (shortcode or title matching); up/down/Enter or a click picks one, Esc closes. The pick replaces
 * the "/…" the agent typed with the reply's text, variables already filled by the server, for editing; it
 * is sent with the Send button like any reply. A reply with an attachment sends it after the text: the box
 * remembers the pick in data-canned (conversation.js sends it as `canned`) and names the attachment. */
(function () {
  "use strict";
  const { t, h, url, api, report } = window.AgentDesk;
  const id = JSON.parse(document.getElementById("page-config").textContent).conversation;
  const box = document.getElementById("reply-text");
  const list = document.getElementById("canned-list");
  const attached = document.getElementById("canned-attachment");
  const MAX_SHOWN = 8;
  let replies = null; // loaded on the first "/"
  let shown = [];
  let active = 0;
  let token = null; // {start, end, query}: the "/…" before the caret

  async function load() {
    if (replies) return replies;
    try {
      replies = (await api(url("cannedReplies", id))).replies;
    } catch (error) {
      report(error);
      replies = [];
    }
    return replies;
  }

  /* The "/word" that ends at the caret and starts the box or follows a space. */
  function tokenAtCaret() {
    const caret = box.selectionStart;
    if (caret !== box.selectionEnd) return null;
    const before = box.value.slice(0, caret);
    const match = /(^|\s)\/([^\s/]*)$/.exec(before);
    if (!match) return null;
    return { start: caret - match[2].length - 1, end: caret, query: match[2].toLowerCase() };
  }

  function close() {
    list.hidden = true;
    list.replaceChildren();
    shown = [];
    token = null;
    box.setAttribute("aria-expanded", "false");
  }

  function render() {
    list.replaceChildren(...shown.map((reply, index) => h("li.canned-item", {
      role: "option", id: `canned-${reply.id}`, "data-shortcode": reply.shortcode,
      "aria-selected": index === active ? "true" : "false",
      onmousedown: (e) => { e.preventDefault(); choose(reply); }, // before the box loses focus
    }, h("span.canned-code", {}, "/" + reply.shortcode), " ", h("span.canned-title", {}, reply.title),
    reply.own ? h("span.canned-own.muted", {}, t("canned.own")) : null,
    reply.attachment ? h("span.canned-has-file.muted", {}, "📎") : null)));
    if (!shown.length) list.append(h("li.canned-none.muted", {}, t("canned.none")));
    list.hidden = false;
    box.setAttribute("aria-expanded", "true");
    if (shown[active]) box.setAttribute("aria-activedescendant", `canned-${shown[active].id}`);
  }

  async function update() {
    const found = tokenAtCaret();
    if (!found || box.disabled) { close(); return; }
    const all = await load();
    token = tokenAtCaret(); // the agent may have typed on while the list loaded
    if (!token) { close(); return; }
    const q = token.query;
    shown = all.filter((r) => r.shortcode.toLowerCase().startsWith(q) || r.title.toLowerCase().includes(q))
      .slice(0, MAX_SHOWN);
    active = Math.min(active, Math.max(shown.length - 1, 0));
    render();
  }

  function choose(reply) {
    const at = token || tokenAtCaret();
    if (!at) { close(); return; }
    box.value = box.value.slice(0, at.start) + reply.text + box.value.slice(at.end);
    const caret = at.start + reply.text.length;
    box.setSelectionRange(caret, caret);
    box.dataset.canned = String(reply.id);
    showAttachment(reply);
    close();
    box.focus();
  }

  function showAttachment(reply) {
    if (reply && reply.attachment) {
      attached.textContent = t("canned.attachment", { name: reply.attachment.name });
      attached.hidden = false;
    } else {
      attached.textContent = "";
      attached.hidden = true;
    }
  }

  box.addEventListener("input", () => {
    if (!box.value.trim()) { delete box.dataset.canned; showAttachment(null); } // sent, or cleared
    active = 0;
    update();
  });
  box.addEventListener("keydown", (e) => {
    if (list.hidden) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      if (!shown.length) return;
      active = (active + (e.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
      render();
    } else if (e.key === "Enter" && !e.ctrlKey && !e.metaKey && shown.length) {
      e.preventDefault();
      choose(shown[active]);
    } else if (e.key === "Escape") {
      e.preventDefault();
      close();
    }
  });
  box.addEventListener("blur", () => close());
  // conversation.js empties the box after sending: the pick goes with it.
  document.getElementById("reply-form").addEventListener("canned:sent", () => {
    delete box.dataset.canned;
    showAttachment(null);
  });
})();
