/* The profile panel of the conversation page: the customer as WeCom names them (name, avatar, channel; a
 * refresh WeCom refused is said, the last profile stays), custom attributes and notes the agent keeps (checked
 * by the server with the API's rules), and the customer's earlier conversations. Redrawn when the socket says
 * the profile changed (WeCom's answer came, a colleague edited it). */
(function () {
  "use strict";
  const { t, h, url, api, report, banner, socket, time, labelChip } = window.AgentDesk;
  const id = JSON.parse(document.getElementById("page-config").textContent).conversation;
  const $ = (sel) => document.getElementById(sel);
  let panel = null;
  let notesDirty = false; // the agent's unsaved notes are never replaced by a refetch

  async function load() {
    try {
      show(await api(url("profile", id)));
    } catch (error) {
      if (error.status !== 404) report(error, "profile");
    }
  }

  async function save(body, done) {
    try {
      show(await api(url("profile", id), { method: "POST", body }));
      banner.clear("profile");
      banner.notice(done, { key: "profile-done" });
      return true;
    } catch (error) {
      report(error, "profile");
      return false;
    }
  }

  function show(data) {
    panel = data;
    $("profile-name").textContent = data.name;
    $("profile-channel").textContent = `${data.channel} · ${data.app} · ${data.external_id}`;
    const avatar = $("profile-avatar");
    if (data.avatar_url) {
      if (avatar.getAttribute("src") !== data.avatar_url) avatar.src = data.avatar_url;
      avatar.hidden = false;
    } else {
      avatar.removeAttribute("src");
      avatar.hidden = true;
    }
    const status = $("profile-status");
    status.classList.toggle("bad", Boolean(data.error));
    status.dataset.fetched = data.fetched_at ? "1" : "";
    if (data.error) status.textContent = t("profile.error", { reason: data.error });
    else if (data.fetched_at) status.textContent = t("profile.fetched", { time: time(data.fetched_at) });
    else status.textContent = t("profile.not_fetched");
    renderAttributes(data.attributes);
    if (!notesDirty) $("profile-notes").value = data.notes;
    renderPast(data.past);
  }

  function renderAttributes(attributes) {
    const names = Object.keys(attributes).sort();
    if (!names.length) {
      $("profile-attributes").replaceChildren(h("dd.muted", {}, t("profile.no_attributes")));
      return;
    }
    $("profile-attributes").replaceChildren(...names.flatMap((name) => [
      h("dt", {}, name),
      h("dd", { "data-attribute": name }, String(attributes[name]), " ",
        h("button.link.small", {
          type: "button", "aria-label": t("profile.remove_attribute", { name }),
          onclick: () => save({ attributes: { [name]: null } }, t("profile.attribute_saved")),
        }, "×")),
    ]));
  }

  function renderPast(past) {
    if (!past.length) {
      $("past-conversations").replaceChildren(h("li.empty", {}, t("profile.no_past")));
      return;
    }
    $("past-conversations").replaceChildren(...past.map((row) => h("li", { "data-conversation": row.id },
      h("div.past-head", {},
        row.url ? h("a", { href: row.url }, time(row.started_at)) : h("span", {}, time(row.started_at)),
        " ", h("span.badge", { "data-state": row.state }, t("state." + row.state)),
        row.url ? null : h("span.muted.small", {}, " " + t("profile.no_access"))),
      row.labels.length ? h("div.label-chips", {}, row.labels.map((label) => labelChip(label))) : null,
      row.first_line ? h("div.clip.muted", {}, row.first_line) : null)));
  }

  $("attribute-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const name = $("attribute-name").value.trim();
    if (!name) return;
    if (await save({ attributes: { [name]: $("attribute-value").value } }, t("profile.attribute_saved"))) {
      $("attribute-name").value = "";
      $("attribute-value").value = "";
    }
  });
  $("profile-notes").addEventListener("input", () => { notesDirty = true; });
  $("save-notes").addEventListener("click", async () => {
    if (await save({ notes: $("profile-notes").value }, t("profile.notes_saved"))) notesDirty = false;
  });

  socket.on((event) => {
    if (event.conversation !== id) return;
    if (event.type === "profile" || event.type === "labels" || event.type === "state") load();
  });
  socket.onReady(() => load()); // anything missed while disconnected
  load();
})();
