// The operators' console's one script: follows the revocation feed live, and refreshes the
// dashboard's figures. Every page works without it.
"use strict";

(function () {
  const live = document.getElementById("live");
  if (live && window.EventSource) {
    const list = document.getElementById("live-feed");
    const empty = document.getElementById("live-empty");
    const state = document.getElementById("live-state");
    live.hidden = false;
    const source = new EventSource(live.dataset.source);
    source.addEventListener("ready", function () {
      state.textContent = "connected";
      live.dataset.connected = "true";
    });
    source.addEventListener("feed", function (message) {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (e) {
        return;
      }
      const item = document.createElement("li");
      const body = document.createElement("div");
      const name = document.createElement("code");
      name.textContent = event.name;
      const what = document.createElement("span");
      what.className = "sentence";
      what.textContent = event.what;
      const at = document.createElement("p");
      at.className = "muted when";
      at.textContent = event.at;
      body.append(name, " ", what, at);
      item.append(body);
      list.prepend(item);
      while (list.children.length > 100) {
        list.lastElementChild.remove();
      }
      empty.hidden = true;
    });
    source.addEventListener("error", function () {
      state.textContent = "reconnecting";
      live.dataset.connected = "false";
    });
  }

  const figures = document.getElementById("figures");
  if (figures && window.fetch && window.DOMParser) {
    const seconds = Number(figures.dataset.refresh) || 5;
    window.setInterval(function () {
      if (document.hidden) {
        return;
      }
      fetch(window.location.href, { credentials: "same-origin" })
        .then(function (response) {
          return response.ok ? response.text() : null;
        })
        .then(function (text) {
          if (!text) {
            return;
          }
          const fresh = new DOMParser().parseFromString(text, "text/html").getElementById("figures");
          if (fresh) {
            figures.replaceChildren(...fresh.childNodes);
          }
        })
        .catch(function () {});
    }, seconds * 1000);
  }
})();
