// The API as the desk and the supervisor view use it: a log-in kept in
// sessionStorage, JSON requests with the bearer token, and the event stream
// (/api/v1/events) read with fetch, so that the token goes in a header and a
// reconnect resumes with Last-Event-ID. No framework, no build step.

const TOKEN_KEY = "dialer-token";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export async function login(username, password) {
  const reply = await request("POST", "/api/v1/session", { username, password }, false);
  sessionStorage.setItem(TOKEN_KEY, reply.token);
  return reply.user;
}

export async function logout() {
  try {
    await request("DELETE", "/api/v1/session");
  } finally {
    sessionStorage.removeItem(TOKEN_KEY);
  }
}

export async function request(method, path, body = undefined, auth = true) {
  const headers = {};
  if (auth && token()) headers.Authorization = `Bearer ${token()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    if (response.status === 401 && auth) sessionStorage.removeItem(TOKEN_KEY);
    throw new ApiError(response.status, data);
  }
  return data;
}

// Follows /api/v1/events until stop() is called: onEvent(type, data, id) for each
// event; on a dropped connection it reconnects after a pause, resuming after the
// last event seen.
export function followEvents(query, onEvent, onState = () => {}) {
  let lastId = null;
  let stopped = false;
  let controller = null;
  async function run() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const headers = { Authorization: `Bearer ${token()}` };
        if (lastId !== null) headers["Last-Event-ID"] = lastId;
        const response = await fetch(`/api/v1/events${query}`, {
          headers,
          signal: controller.signal,
        });
        if (!response.ok) throw new Error(`events: HTTP ${response.status}`);
        onState("open");
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const fields = { data: [] };
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              const colon = line.indexOf(":");
              const name = colon < 0 ? line : line.slice(0, colon);
              const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
              if (name === "data") fields.data.push(text);
              else fields[name] = text;
            }
            if (fields.id !== undefined) lastId = fields.id;
            if (fields.event && fields.data.length) {
              onEvent(fields.event, JSON.parse(fields.data.join("\n")), fields.id);
            }
          }
        }
      } catch (error) {
        if (stopped) return;
      }
      onState("closed");
      if (!stopped) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  run();
  return {
    stop() {
      stopped = true;
      if (controller) controller.abort();
    },
  };
}

// A small DOM helper: el("td", {class: "x"}, "text", child...).
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatTime(iso, timeZone = undefined) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, {
    timeZone,
    dateStyle: "short",
    timeStyle: "short",
  });
}

export function setupLogin(form, onLoggedIn) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = form.querySelector(".message");
    message.textContent = "";
    try {
      const user = await login(form.username.value, form.password.value);
      form.password.value = "";
      onLoggedIn(user);
    } catch (error) {
      message.textContent = error.message;
    }
  });
}
