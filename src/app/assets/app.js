// MedCrypt's page: it only moves text between the person and the local
// server; every key and every cipher stays in the medcrypt program.
"use strict";

const STRINGS = {
  en: {
    tagline: "Encrypted messages with your physician or patients.",
    unlock_title: "Unlock", passphrase: "Passphrase", unlock: "Unlock",
    read_title: "Read a message", encrypted_message: "Encrypted message", decrypt: "Decrypt",
    write_title: "Write a reply", to: "To", message: "Message", encrypt: "Encrypt",
    wire: "Encrypted line to paste into the chat", copy: "Copy", lock: "Lock", stop: "Stop MedCrypt",
    unlocked: "Unlocked.", locked: "Locked.", copied: "Copied: paste it into the chat.",
    from: "From", read_before: "(read before)", encrypted: "Encrypted: copy the line below into the chat.",
    found: (n) => n === 1 ? "1 message read." : n + " messages read.",
    hint: "What to do:", stopped: "MedCrypt stopped. You can close this page."
  },
  es: {
    tagline: "Mensajes cifrados con su médico o sus pacientes.",
    unlock_title: "Desbloquear", passphrase: "Frase de contraseña", unlock: "Desbloquear",
    read_title: "Leer un mensaje", encrypted_message: "Mensaje cifrado", decrypt: "Descifrar",
    write_title: "Escribir una respuesta", to: "Para", message: "Mensaje", encrypt: "Cifrar",
    wire: "Línea cifrada para pegar en el chat", copy: "Copiar", lock: "Bloquear", stop: "Detener MedCrypt",
    unlocked: "Desbloqueado.", locked: "Bloqueado.", copied: "Copiado: péguelo en el chat.",
    from: "De", read_before: "(ya leído)", encrypted: "Cifrado: copie la línea de abajo en el chat.",
    found: (n) => n === 1 ? "1 mensaje leído." : n + " mensajes leídos.",
    hint: "Qué hacer:", stopped: "MedCrypt se detuvo. Puede cerrar esta página."
  }
};
const LANG = (navigator.language || "en").toLowerCase().startsWith("es") ? "es" : "en";
const T = STRINGS[LANG];

function $(id) { return document.getElementById(id); }

function say(text) { $("alert").textContent = ""; $("status").textContent = text; }
function warn(error, hint) {
  $("status").textContent = "";
  $("alert").textContent = hint ? error + " — " + T.hint + " " + hint : error;
}

async function api(path, body) {
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin"
  });
  let data = {};
  try { data = await response.json(); } catch (_) { data = { error: await response.text() }; }
  if (!response.ok) { throw data; }
  return data;
}

function show(unlocked) {
  $("unlock-view").hidden = unlocked;
  for (const id of ["read-view", "write-view", "controls"]) { $(id).hidden = !unlocked; }
}

async function loadPairings() {
  const data = await api("/api/pairings");
  const to = $("to");
  to.textContent = "";
  for (const p of data.pairings) {
    const option = document.createElement("option");
    option.value = p.alias; option.textContent = p.alias;
    to.appendChild(option);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.documentElement.lang = LANG;
  for (const el of document.querySelectorAll("[data-t]")) {
    const value = T[el.dataset.t];
    if (typeof value === "string") { el.textContent = value; }
  }
  $("unlock-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/api/unlock", { passphrase: $("passphrase").value });
      $("passphrase").value = "";
      show(true);
      await loadPairings();
      say(T.unlocked);
    } catch (e) { warn(e.error, e.hint); }
  });
  $("decrypt").addEventListener("click", async () => {
    const list = $("messages");
    list.textContent = "";
    try {
      const data = await api("/api/decrypt", { text: $("encrypted").value });
      let good = 0;
      const problems = [];
      for (const m of data.messages) {
        const item = document.createElement("li");
        if (m.ok) {
          good += 1;
          const from = document.createElement("span");
          from.className = "from";
          from.textContent = T.from + ": " + m.from + (m.read_before ? " " + T.read_before : "");
          item.appendChild(from);
          item.appendChild(document.createTextNode(m.text));
        } else {
          item.className = "bad";
          item.textContent = m.error + (m.hint ? " — " + T.hint + " " + m.hint : "");
          problems.push(m);
        }
        list.appendChild(item);
      }
      if (problems.length > 0) { warn(problems[0].error, problems[0].hint); }
      else { say(T.found(good)); }
    } catch (e) { if (e.error === "the store is locked") { show(false); } warn(e.error, e.hint); }
  });
  $("encrypt").addEventListener("click", async () => {
    try {
      const data = await api("/api/encrypt", { to: $("to").value, text: $("message").value });
      $("wire").value = data.wire;
      say(T.encrypted);
    } catch (e) { if (e.error === "the store is locked") { show(false); } warn(e.error, e.hint); }
  });
  $("copy").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("wire").value); say(T.copied); }
    catch (_) { $("wire").select(); document.execCommand("copy"); say(T.copied); }
  });
  $("lock").addEventListener("click", async () => {
    try { await api("/api/lock", {}); } catch (_) { /* locked anyway */ }
    show(false); say(T.locked);
  });
  $("stop").addEventListener("click", async () => {
    try { await api("/api/stop", {}); } catch (_) { /* stopped */ }
    show(false); $("unlock-view").hidden = true; say(T.stopped);
  });
});
