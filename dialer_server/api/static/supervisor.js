// The supervisor view: agents and their states live, each campaign's live counts,
// pause/resume buttons for campaigns and agents (every one audited by the API).
import { ApiError, el, followEvents, logout, request, setupLogin, token } from "./api.js";

const STATE_TEXT = {
  logged_out: "Logged out",
  ready: "Ready",
  ringing: "Ringing",
  on_call: "On call",
  wrap_up: "Wrap-up",
  paused: "Paused",
};
const $ = (id) => document.getElementById(id);
let me = null;
let events = null;
let poller = null;

async function act(work) {
  $("message").textContent = "";
  try {
    await work();
  } catch (error) {
    $("message").textContent = error instanceof ApiError ? error.message : String(error);
  }
  refresh();
}

function showLogin(text = "") {
  if (events) events.stop();
  if (poller) clearInterval(poller);
  events = poller = null;
  $("login").hidden = false;
  $("view").hidden = true;
  $("logout").hidden = true;
  $("login").querySelector(".message").textContent = text;
}

async function start() {
  me = await request("GET", "/api/v1/me").catch(() => null);
  if (!me) return showLogin();
  if (!["admin", "supervisor", "read_only"].includes(me.role)) {
    return showLogin(`${me.username} is an ${me.role}: this view is for supervisors`);
  }
  $("login").hidden = true;
  $("view").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${me.username} · ${me.role}`;
  events = followEvents("?type=agent.state,campaign.state_changed,attempt.connected", () => refresh(), (state) => {
    $("live").textContent = state === "open" ? "Live" : "Reconnecting";
    $("live").className = `state ${state === "open" ? "state-ready" : "state-paused"}`;
  });
  poller = setInterval(refresh, 1000);
  refresh();
}

const canWrite = () => me && me.role !== "read_only";

async function refresh() {
  if (!token() || !me) return;
  let view;
  try {
    view = await request("GET", "/api/v1/supervisor");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) showLogin();
    return;
  }
  const reasons = $("reason");
  if (reasons.options.length !== view.pause_reasons.length) {
    reasons.replaceChildren(...view.pause_reasons.map((r) => el("option", { value: r }, r)));
  }
  $("campaigns").tBodies[0].replaceChildren(
    ...view.campaigns.map((c) =>
      el(
        "tr",
        { "data-campaign": c.id },
        el("td", {}, c.name),
        el("td", { class: "campaign-state" }, c.state),
        el("td", {}, c.mode),
        el("td", {}, c.dialling),
        el("td", {}, c.ringing),
        el("td", {}, c.connected),
        el("td", {}, c.abandoned_today),
        el("td", {}, `${(c.abandon_rate_today * 100).toFixed(1)} %`),
        el(
          "td",
          {},
          canWrite() && c.state === "running"
            ? el("button", { type: "button", class: "pause-campaign", onclick: () => act(() => request("POST", `/api/v1/campaigns/${c.id}/pause`)) }, "Pause")
            : null,
          canWrite() && c.state === "paused"
            ? el("button", { type: "button", class: "resume-campaign", onclick: () => act(() => request("POST", `/api/v1/campaigns/${c.id}/resume`)) }, "Resume")
            : null,
        ),
      ),
    ),
  );
  // Agents at work first; those logged out are only named below the table.
  const out = view.agents.filter((a) => a.state === "logged_out");
  $("logged-out").textContent = out.length
    ? `Logged out: ${out.map((a) => a.agent).join(", ")}`
    : "";
  $("agents").tBodies[0].replaceChildren(
    ...view.agents.filter((a) => a.state !== "logged_out").map((a) =>
      el(
        "tr",
        { "data-agent": a.agent },
        el("td", {}, a.agent),
        el("td", {}, a.user || ""),
        el(
          "td",
          {},
          el("span", { class: `badge badge-${a.state}` }, STATE_TEXT[a.state] + (a.pause_reason ? ` (${a.pause_reason})` : "")),
        ),
        el("td", {}, a.queues.join(", ")),
        el(
          "td",
          {},
          canWrite() && ["ready", "on_call", "ringing"].includes(a.state)
            ? el("button", { type: "button", onclick: () => act(() => request("POST", `/api/v1/supervisor/agents/${a.agent}/pause`, { reason: $("reason").value })) }, "Pause")
            : null,
          canWrite() && ["paused", "wrap_up"].includes(a.state)
            ? el("button", { type: "button", onclick: () => act(() => request("POST", `/api/v1/supervisor/agents/${a.agent}/resume`)) }, "Resume")
            : null,
        ),
      ),
    ),
  );
  document.body.dataset.refreshed = String(Date.now());
}

document.addEventListener("DOMContentLoaded", () => {
  setupLogin($("login"), () => start());
  $("logout").addEventListener("click", async () => {
    await logout().catch(() => null);
    showLogin();
  });
  if (token()) start();
  else showLogin();
});
