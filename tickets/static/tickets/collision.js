/* Collision detection on the conversation page: who else (agents and supervisors of the tenant who can
 * see this conversation) has it open now, and who is typing a reply. The server keeps the viewers and
 * tells the conversation's sockets ("viewers" events, tickets/viewers.py); typing is an event we send at
 * most every TYPING_SEND_MS while the reply box changes, shown by the others for TYPING_SHOW_MS. */
(function () {
  "use strict";
  const { t, h, socket } = window.AgentDesk;
  const id = JSON.parse(document.getElementById("page-config").textContent).conversation;
  const box = document.getElementById("collision");
  const reply = document.getElementById("reply-text");
  const TYPING_SEND_MS = 2000;
  const TYPING_SHOW_MS = 6000;
  let me = null;
  let viewers = []; // [{user, name}] other than us
  const typing = new Map(); // user -> {name, timer}
  let typedAt = 0;

  function render() {
    const lines = [];
    if (viewers.length) {
      lines.push(h("span.viewing", { "data-collision": "viewing" },
        t("collision.viewing", { names: viewers.map((viewer) => viewer.name).join("、") })));
    }
    for (const [user, entry] of typing) {
      lines.push(h("span.typing", { "data-collision": "typing", "data-user": String(user) },
        t("collision.typing", { name: entry.name })));
    }
    box.replaceChildren(...lines);
    box.hidden = !lines.length;
  }

  function stopTyping(user) {
    const entry = typing.get(user);
    if (entry) clearTimeout(entry.timer);
    typing.delete(user);
  }

  socket.onReady((hello) => {
    me = hello.user;
  });

  socket.on((event) => {
    if (event.conversation !== id) return;
    if (event.type === "viewers") {
      viewers = event.viewers.filter((viewer) => viewer.user !== me);
      for (const user of [...typing.keys()]) {
        if (!viewers.some((viewer) => viewer.user === user)) stopTyping(user); // they left
      }
      render();
    } else if (event.type === "typing" && event.user !== me) {
      stopTyping(event.user);
      typing.set(event.user, { name: event.name, timer: setTimeout(() => { typing.delete(event.user); render(); }, TYPING_SHOW_MS) });
      render();
    } else if (event.type === "message" && event.message && event.message.author === "agent") {
      for (const user of [...typing.keys()]) stopTyping(user); // the reply is in: nobody is typing it now
      render();
    }
  });

  reply.addEventListener("input", () => {
    const now = Date.now();
    if (now - typedAt < TYPING_SEND_MS || !reply.value.trim()) return;
    if (socket.send({ type: "typing" })) typedAt = now;
  });

  render();
})();
