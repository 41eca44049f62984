/* The queue page: waiting conversations and mine, refetched whenever the socket says the queue
 * changed; presence toggle; supervisors also see the agents and can assign. */
(function () {
  "use strict";
  const { config, t, h, url, api, report, banner, socket, duration, presenceBadge, busy, labelChip } = window.AgentDesk;
  const me = config.me;

  let data = { waiting: [], mine: [], agents: [], teams: [], me: { presence: "offline", teams: [] } };
  const takenBy = new Map(); // conversation id -> the agent who took it (from "queue" events)
  let loading = null;
  let again = false;

  /* One fetch at a time; a change announced during a fetch triggers one more. */
  async function refresh() {
    if (loading) {
      again = true;
      return loading;
    }
    loading = (async () => {
      try {
        do {
          again = false;
          data = await api(url("queueApi"));
          banner.clear("queue");
          render();
        } while (again);
      } catch (error) {
        report(error, "queue");
      } finally {
        loading = null;
      }
    })();
    return loading;
  }

  function customerCell(row) {
    return h("td", {},
      h("a.customer", { href: url("page", row.id) }, row.customer),
      h("div.muted.small", {}, row.channel),
      (row.labels || []).length ? h("div.label-chips", {}, row.labels.map((label) => labelChip(label))) : null);
  }

  function waitingRow(row) {
    const since = row.waiting_since ? Date.parse(row.waiting_since) : null;
    const badges = [];
    if (row.offered_to === me.id) badges.push(h("span.badge.offer", {}, t("queue.offered_to_you")));
    else if (row.offered_to) badges.push(h("span.badge.muted-badge", {}, t("queue.offered_to_other")));
    if (row.first_response_breached) badges.push(h("span.badge.breach", {}, t("queue.sla_breached")));
    const actions = h("td.row-actions", {},
      h("button.primary.small.claim", {
        type: "button", "data-conversation": row.id,
        onclick: (e) => claim(row, e.currentTarget),
      }, t("queue.claim")),
      h("a.button.small", { href: url("page", row.id) }, t("queue.open")));
    if (me.supervisor) actions.append(assignControl(row));
    if (me.supervisor && data.teams.length) actions.append(teamControl(row));
    return h("tr", { "data-conversation": row.id, class: row.offered_to === me.id ? "offered" : null },
      customerCell(row),
      h("td.last", {}, h("div.clip", {}, row.last_message), ...badges),
      h("td.nowrap", { "data-since": since || "" }, since ? duration(Date.now() - since) : ""),
      h("td", {}, row.priority ? t("priority." + row.priority) : ""),
      h("td.team", {}, row.team ? row.team.name : t("queue.no_team")),
      actions);
  }

  /* The team filter: every team, "my teams", "no team"; the choice survives refreshes. */
  const teamFilter = document.getElementById("team-filter");
  teamFilter.addEventListener("change", () => render());

  function fillTeamFilter() {
    const chosen = teamFilter.value;
    const options = [h("option", { value: "" }, t("queue.all_teams"))];
    if ((data.me.teams || []).length) options.push(h("option", { value: "mine" }, t("queue.my_teams")));
    options.push(...data.teams.map((team) => h("option", { value: String(team.id) }, team.name)),
      h("option", { value: "none" }, t("queue.no_team")));
    teamFilter.replaceChildren(...options);
    teamFilter.value = [...teamFilter.options].some((o) => o.value === chosen) ? chosen : "";
    teamFilter.closest("label").hidden = !data.teams.length;
  }

  function inFilter(row) {
    const chosen = teamFilter.value;
    if (!chosen) return true;
    if (chosen === "none") return !row.team;
    if (chosen === "mine") return Boolean(row.team) && (data.me.teams || []).includes(row.team.id);
    return Boolean(row.team) && String(row.team.id) === chosen;
  }

  /* A supervisor moves a waiting customer to another team's queue. */
  function teamControl(row) {
    const select = h("select.small.move-team", { "aria-label": t("queue.move_to_team") },
      h("option", { value: "" }, t("queue.move_to_team")),
      data.teams.filter((team) => !row.team || team.id !== row.team.id)
        .map((team) => h("option", { value: team.id }, team.name)),
      row.team ? h("option", { value: "none" }, t("queue.no_team")) : null);
    const button = h("button.small", {
      type: "button",
      onclick: async (e) => {
        if (!select.value) return;
        const team = select.value === "none" ? null : Number(select.value);
        const name = select.options[select.selectedIndex].textContent;
        await busy(e.currentTarget, async () => {
          try {
            await api(url("team", row.id), { method: "POST", body: { team } });
            banner.notice(t("queue.moved", { team: name }));
          } catch (error) {
            report(error);
          }
          await refresh();
        });
      },
    }, t("queue.move"));
    return h("span.assign", {}, select, button);
  }

  function mineRow(row) {
    return h("tr", { "data-conversation": row.id },
      customerCell(row),
      h("td.last", {}, h("div.clip", {}, row.last_message)),
      h("td", {}, row.ticket ? "#" + row.ticket : "",
        row.first_response_breached ? h("span.badge.breach", {}, t("queue.sla_breached")) : null),
      h("td.row-actions", {}, h("a.button.small.primary", { href: url("page", row.id) }, t("queue.open"))));
  }

  function assignControl(row) {
    const select = h("select.small", { "aria-label": t("queue.assign_to") },
      h("option", { value: "" }, t("queue.assign_to")),
      data.agents.map((a) => h("option", { value: a.id }, `${a.name} · ${t("presence." + a.presence)}`)));
    const button = h("button.small", {
      type: "button",
      onclick: async (e) => {
        if (!select.value) return;
        const agent = data.agents.find((a) => String(a.id) === select.value);
        await busy(e.currentTarget, async () => {
          try {
            await api(url("reassign", row.id), { method: "POST", body: { agent: Number(select.value) } });
            banner.notice(t("queue.assigned", { agent: agent ? agent.name : select.value }));
          } catch (error) {
            report(error);
          }
          await refresh();
        });
      },
    }, t("queue.assign"));
    return h("span.assign", {}, select, button);
  }

  async function claim(row, button) {
    await busy(button, async () => {
      try {
        await api(url("claim", row.id), { method: "POST", body: {} });
        location.assign(url("page", row.id));
      } catch (error) {
        if (error.status === 404 || error.status === 409) await explainRefusedClaim(row, error);
        else report(error);
        await refresh();
      }
    });
  }

  /* Losing a claim race answers 409 "Already taken by ..." when both claims were in flight together,
   * or 404 when the other one had already committed (the conversation left the queue, so it is no
   * longer ours to see). Either way, say who took it: the socket's "taken" event names them. */
  async function explainRefusedClaim(row, error) {
    for (let waited = 0; !takenBy.has(row.id) && waited < 1000; waited += 100) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const key = "claim-" + row.id;
    if (takenBy.has(row.id)) banner.show(t("queue.taken_by", { agent: takenBy.get(row.id) }), { key });
    else if (error.status === 409) report(error, key);
    else banner.show(t("queue.gone"), { key });
  }

  function fill(tableId, rows, build, emptyId, countId) {
    const body = document.querySelector(`#${tableId} tbody`);
    body.replaceChildren(...rows.map(build));
    document.getElementById(tableId).hidden = rows.length === 0;
    document.getElementById(emptyId).hidden = rows.length !== 0;
    document.getElementById(countId).textContent = rows.length;
  }

  function render() {
    fillTeamFilter();
    fill("waiting", data.waiting.filter(inFilter), waitingRow, "waiting-empty", "waiting-count");
    fill("mine", data.mine, mineRow, "mine-empty", "mine-count");
    renderPresence(data.me.presence);
    const agents = document.getElementById("agents");
    if (agents) {
      agents.replaceChildren(...data.agents.map((a) => h("li", { "data-agent": a.id },
        h("span.agent-name", {}, a.name), h("span.muted.small", {}, t("role." + a.role)), presenceBadge(a.presence))));
    }
    document.title = (data.waiting.length ? `(${data.waiting.length}) ` : "") + document.title.replace(/^\(\d+\) /, "");
  }

  function renderPresence(status) {
    for (const button of document.querySelectorAll("[data-presence]")) {
      if (!button.matches("button")) continue;
      button.setAttribute("aria-pressed", String(button.dataset.presence === status));
    }
  }

  for (const button of document.querySelectorAll("button[data-presence]")) {
    button.addEventListener("click", () => {
      if (!socket.send({ type: "presence", status: button.dataset.presence })) {
        banner.show(t("conn.reconnecting"), { key: "connection", kind: "info" });
      }
    });
  }

  socket.on((event) => {
    switch (event.type) {
      case "queue":
        if (event.change === "taken" && event.conversation) takenBy.set(event.conversation, event.agent);
        refresh();
        break;
      case "offer":
        refresh().then(() => {
          const row = data.waiting.find((r) => r.id === event.conversation);
          banner.notice(t("queue.offer", { customer: row ? row.customer : "#" + event.conversation }),
            { key: "offer-" + event.conversation, link: { href: url("page", event.conversation), text: t("queue.open") } });
        });
        break;
      case "presence":
        data.me.presence = event.status;
        renderPresence(event.status);
        if (me.supervisor) refresh();
        break;
      default:
        break;
    }
  });
  // After every (re)connect: events may have been missed while we were away.
  socket.onReady(() => refresh());

  // Waiting times tick on their own.
  setInterval(() => {
    for (const cell of document.querySelectorAll("td[data-since]")) {
      const since = Number(cell.dataset.since);
      if (since) cell.textContent = duration(Date.now() - since);
    }
  }, 15000);

  refresh();
  socket.connect();
})();
