// The agent desk: log in, join campaigns, pause, the screen pop of each call
// (from the attempt.connected event of /api/v1/events), dispositions with a
// callback in the contact's local time, preview contacts.
import {
  ApiError,
  el,
  followEvents,
  formatTime,
  logout,
  request,
  setupLogin,
  token,
} from "./api.js";

const STATE_TEXT = {
  logged_out: "Logged out",
  ready: "Ready",
  ringing: "Ringing",
  on_call: "On call",
  wrap_up: "Wrap-up",
  paused: "Paused",
};
const CALLBACK_ACTIONS = ["personal_callback", "follow_up_auto"];
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const $ = (id) => document.getElementById(id);

let me = null;
let desk = null;
let events = null;
let poller = null;
let card = null; // the call on screen: {attempt, contact, dispositions...}
let chosen = null; // the disposition entry chosen

function message(text) {
  $("message").textContent = text || "";
}

async function act(work) {
  message("");
  try {
    return await work();
  } catch (error) {
    message(error instanceof ApiError ? error.message : String(error));
    if (error instanceof ApiError && error.status === 401) showLogin();
    return null;
  } finally {
    refresh();
  }
}

function showLogin() {
  if (events) events.stop();
  if (poller) clearInterval(poller);
  events = poller = null;
  $("login").hidden = false;
  $("desk").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  setState("logged_out", "");
}

function setState(state, reason) {
  const line = $("state");
  line.className = `state state-${state}`;
  line.dataset.state = state;
  line.textContent = STATE_TEXT[state] + (reason && state !== "wrap_up" ? ` (${reason})` : "");
}

async function start() {
  me = await request("GET", "/api/v1/me").catch(() => null);
  if (!me) return showLogin();
  if (me.role !== "agent") {
    showLogin();
    $("login").querySelector(".message").textContent =
      `${me.username} is a ${me.role}: the desk is for agents (see /desk/supervisor)`;
    return;
  }
  $("login").hidden = true;
  $("desk").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${me.username} · ${me.agent}`;
  events = followEvents("", onEvent);
  poller = setInterval(refresh, 2000);
  await refresh();
}

function onEvent(type, data) {
  if (type === "attempt.connected" && data.agent && data.agent.name === me.agent) {
    showCall(data.attempt.id, true);
  }
  refresh();
}

async function refresh() {
  if (!token() || !me) return;
  try {
    desk = await request("GET", `/api/v1/desk?tz=${encodeURIComponent(zone)}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) showLogin();
    return;
  }
  setState(desk.state, desk.pause_reason);
  renderCampaigns();
  renderPauseReasons();
  renderCallbacks();
  renderPreview();
  if (desk.call && (!card || card.attempt.id !== desk.call.id)) {
    showCall(desk.call.id, false);
  }
}

function renderCampaigns() {
  const list = $("campaigns");
  list.replaceChildren(
    ...desk.campaigns.map((c) =>
      el(
        "li",
        { "data-campaign": c.id },
        el("span", {}, c.name, " ", el("span", { class: "muted" }, c.mode)),
        c.joined
          ? el("button", { type: "button", onclick: () => act(() => queue("leave", c.id)) }, "Leave")
          : el("button", { type: "button", onclick: () => act(() => queue("join", c.id)) }, "Join"),
      ),
    ),
  );
  if (!desk.campaigns.length) list.append(el("li", { class: "muted" }, "No campaign to join"));
}

async function queue(action, campaignId) {
  await request("POST", `/api/v1/desk/${action}`, { campaign_id: campaignId });
}

function renderPauseReasons() {
  const select = $("pause-reason");
  if (select.options.length === desk.pause_reasons.length) return;
  select.replaceChildren(...desk.pause_reasons.map((r) => el("option", { value: r }, r)));
}

function renderCallbacks() {
  const list = $("callbacks");
  list.replaceChildren(
    ...desk.callbacks.map((c) =>
      el(
        "li",
        {},
        el("span", {}, c.external_id || `contact ${c.contact_id}`, " ", el("span", { class: "muted" }, c.campaign_name)),
        el("span", {}, formatTime(c.callback_at)),
      ),
    ),
  );
  if (!desk.callbacks.length) list.append(el("li", { class: "muted" }, "None"));
}

function renderPreview() {
  const joined = desk.campaigns.filter((c) => c.mode === "preview" && c.joined);
  $("preview").hidden = joined.length === 0 && !desk.preview;
  const select = $("preview-campaign");
  const ids = joined.map((c) => String(c.id)).join(",");
  if (select.dataset.ids !== ids) {
    select.dataset.ids = ids;
    select.replaceChildren(...joined.map((c) => el("option", { value: c.id }, c.name)));
  }
  const box = $("preview-card");
  if (desk.preview) {
    if (box.dataset.contact !== String(desk.preview.contact.id)) renderPreview1(desk.preview);
  } else if (box.dataset.contact) {
    // Dialled (or given back): no longer shown.
    box.replaceChildren();
    box.dataset.contact = "";
    $("preview-actions").hidden = true;
  }
}

function renderPreview1(data) {
  const box = $("preview-card");
  if (!data || !data.contact) {
    box.replaceChildren(el("p", { class: "muted" }, "No contact is due now."));
    box.dataset.contact = "";
    $("preview-actions").hidden = true;
    return;
  }
  box.dataset.contact = String(data.contact.id);
  box.replaceChildren(contactView(data));
  $("preview-actions").hidden = false;
}

function contactView(data) {
  const c = data.contact;
  const params = el(
    "table",
    { class: "params" },
    el("tbody", {}, ...c.params.map((p) => el("tr", {}, el("th", {}, p.name), el("td", { "data-param": p.param }, p.value ?? "")))),
  );
  const history = el(
    "table",
    { class: "history" },
    el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Number"), el("th", {}, "Outcome"), el("th", {}, "Agent"), el("th", {}, "Disposition"), el("th", {}, "Note"))),
    el(
      "tbody",
      {},
      ...data.history.map((h) =>
        el(
          "tr",
          {},
          el("td", {}, formatTime(h.created_at)),
          el("td", {}, h.number),
          el("td", {}, h.outcome || h.state),
          el("td", {}, h.agent || ""),
          el("td", {}, h.disposition || ""),
          el("td", {}, h.note || ""),
        ),
      ),
    ),
  );
  return el(
    "div",
    { class: "contact", "data-contact": c.id },
    el("div", { class: "card-title", id: "contact-external-id" }, c.external_id || `contact ${c.id}`),
    el("div", { class: "muted" }, `${c.phones.join(", ")} · ${c.timezone} · `, data.campaign.name),
    params,
    data.script ? el("div", { class: "script", id: "script" }, data.script) : null,
    el("h3", {}, "History"),
    data.history.length ? history : el("p", { class: "muted" }, "First call"),
  );
}

async function showCall(attemptId, fromEvent) {
  if (card && card.attempt.id === attemptId) return;
  const data = await request("GET", `/api/v1/desk/calls/${attemptId}`).catch(() => null);
  if (!data) return;
  card = data;
  chosen = null;
  $("call").hidden = false;
  $("call-card").replaceChildren(contactView(data));
  $("note").value = "";
  $("callback").hidden = true;
  $("save").disabled = true;
  $("callback-zone").textContent = data.contact.timezone;
  $("dispositions").replaceChildren(
    ...data.dispositions.map((d) =>
      el("button", { type: "button", "data-status": d.name, title: d.description || "", onclick: () => choose(d) }, d.label),
    ),
  );
  // When the contact appeared on screen: the tests compare it with the bridge.
  document.body.dataset.popAttempt = attemptId;
  document.body.dataset.popAt = String(Date.now());
  document.body.dataset.popFromEvent = String(fromEvent);
}

function choose(entry) {
  chosen = entry;
  for (const button of $("dispositions").children) {
    button.classList.toggle("selected", button.dataset.status === entry.name);
  }
  const isCallback = CALLBACK_ACTIONS.includes(entry.action);
  $("callback").hidden = !isCallback;
  if (isCallback) {
    document.querySelector(`input[name=callback-for][value=${entry.action === "personal_callback" ? "me" : "anyone"}]`).checked = true;
  }
  $("save").disabled = false;
}

function callbackEntry() {
  // "me" is the campaign's personal callback entry, "any agent" its automatic one.
  const forMe = document.querySelector("input[name=callback-for]:checked").value === "me";
  const action = forMe ? "personal_callback" : "follow_up_auto";
  if (chosen.action === action) return chosen;
  return card.dispositions.find((d) => d.action === action) || chosen;
}

async function save() {
  if (!card || !chosen) return;
  let entry = chosen;
  const body = { status: entry.name, note: $("note").value || null };
  if (CALLBACK_ACTIONS.includes(entry.action)) {
    entry = callbackEntry();
    body.status = entry.name;
    if (!$("callback-at").value) {
      message("Choose when to call back");
      return;
    }
    body.callback_local = $("callback-at").value;
  }
  const done = await act(() => request("POST", `/api/v1/desk/calls/${card.attempt.id}/disposition`, body));
  if (done) {
    message(`Saved: ${entry.label}`);
    document.body.dataset.saved = card.attempt.id;
    card = null;
    $("call").hidden = true;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setupLogin($("login"), () => start());
  $("logout").addEventListener("click", async () => {
    await logout().catch(() => null);
    showLogin();
  });
  $("pause").addEventListener("click", () =>
    act(() => request("POST", "/api/v1/desk/pause", { reason: $("pause-reason").value })),
  );
  $("resume").addEventListener("click", () => act(() => request("POST", "/api/v1/desk/resume")));
  $("save").addEventListener("click", save);
  $("preview-next").addEventListener("click", () =>
    act(async () => {
      const data = await request("POST", "/api/v1/desk/preview/next", {
        campaign_id: Number($("preview-campaign").value),
      });
      renderPreview1(data.contact);
    }),
  );
  $("preview-call").addEventListener("click", () =>
    act(async () => {
      await request("POST", "/api/v1/desk/preview/call");
      message("Calling...");
    }),
  );
  $("preview-skip").addEventListener("click", () =>
    act(async () => {
      const reason = $("skip-reason").value.trim();
      if (!reason) throw new Error("A reason is needed to skip");
      await request("POST", "/api/v1/desk/preview/skip", { reason });
      $("skip-reason").value = "";
      $("preview-card").replaceChildren();
      $("preview-card").dataset.contact = "";
    }),
  );
  if (token()) start();
  else showLogin();
});
