// A stand-in for the Next.js app: the auth server's base URL comes in ?api=.
"use strict";

const api = new URL(window.location.href).searchParams.get("api");
const state = { access: null, csrf: null };

function show(step, fields) {
  document.getElementById("step").textContent = step;
  for (const [id, value] of Object.entries(fields)) {
    document.getElementById(id).textContent = value;
  }
  document.getElementById("cookies").textContent = document.cookie || "(none)";
  document.body.dataset.done = step;
}

async function call(step, path, options) {
  try {
    const response = await fetch(api + path, { method: "POST", credentials: "include", ...options });
    const text = await response.text();
    const body = text ? JSON.parse(text) : {};
    if (body.access) state.access = body.access;
    if (body.csrf_token) state.csrf = body.csrf_token;
    show(step, {
      status: String(response.status),
      keys: Object.keys(body).sort().join(",") || "(empty)",
      "access-tail": state.access ? state.access.slice(-12) : "-",
      error: body.code || "-",
    });
    return body;
  } catch (err) {
    show(step, { status: "failed", keys: "-", error: String(err) });
    return null;
  }
}

function cookieHeaders(withCsrf) {
  const headers = { "Content-Type": "application/json", "X-Token-Transport": "cookie" };
  if (withCsrf && state.csrf) headers["X-CSRFToken"] = state.csrf;
  return headers;
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  const email = document.getElementById("email").value;
  const password = document.getElementById("password").value;
  call("sign-in", "/api/token/", { headers: cookieHeaders(false), body: JSON.stringify({ email, password }) });
});

document.getElementById("refresh").addEventListener("click", () => {
  call("refresh", "/api/token/refresh/", { headers: cookieHeaders(true), body: "{}" });
});

document.getElementById("refresh-without-csrf").addEventListener("click", () => {
  call("refresh-without-csrf", "/api/token/refresh/", { headers: cookieHeaders(false), body: "{}" });
});

document.getElementById("logout").addEventListener("click", () => {
  call("logout", "/api/token/logout/", { headers: cookieHeaders(true), body: "{}" });
});

document.getElementById("me").addEventListener("click", async () => {
  try {
    const response = await fetch(api + "/api/me/", { headers: { Authorization: "Bearer " + state.access } });
    const body = await response.json();
    show("me", { status: String(response.status), who: body.email || "-", error: body.code || "-" });
  } catch (err) {
    show("me", { status: "failed", error: String(err) });
  }
});
