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
    hint: "What to do:", stopped: "MedCrypt stopped. You can close this page.",
    pair_title: "Pair with your physician", pair_help: "Take or choose a photo of the QR code your physician shows, or type the code.",
    qr_image: "QR code image", pairing_code: "Pairing code", physician_alias: "Name for this physician (needed with a typed code)",
    pair: "Pair", compare: "Compare this safety number with the one on your physician's screen:",
    paired: "Paired. Compare the safety number.", open_telegram: "Connect your Telegram chat", open_whatsapp: "Connect your WhatsApp chat",
    invite_title: "New pairing (physician)", patient_alias: "Patient", invite: "Show the QR code",
    typed_code: "Typed code:", safety_number: "Safety number:", invited: "Show this QR code to the patient.",
    file_title: "Open an encrypted file", encrypted_file: "Encrypted file", decrypt_file: "Decrypt file",
    saved: (name, from) => "Decrypted " + name + " (verified, from " + from + "): saved by your browser."
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
    hint: "Qué hacer:", stopped: "MedCrypt se detuvo. Puede cerrar esta página.",
    pair_title: "Emparejar con su médico", pair_help: "Tome o elija una foto del código QR que le muestra su médico, o escriba el código.",
    qr_image: "Imagen del código QR", pairing_code: "Código de emparejamiento", physician_alias: "Nombre para este médico (necesario con un código escrito)",
    pair: "Emparejar", compare: "Compare este número de seguridad con el de la pantalla de su médico:",
    paired: "Emparejado. Compare el número de seguridad.", open_telegram: "Conectar su chat de Telegram", open_whatsapp: "Conectar su chat de WhatsApp",
    invite_title: "Nuevo emparejamiento (médico)", patient_alias: "Paciente", invite: "Mostrar el código QR",
    typed_code: "Código escrito:", safety_number: "Número de seguridad:", invited: "Muestre este código QR al paciente.",
    file_title: "Abrir un archivo cifrado", encrypted_file: "Archivo cifrado", decrypt_file: "Descifrar archivo",
    saved: (name, from) => "Descifrado " + name + " (verificado, de " + from + "): guardado por su navegador."
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

// The API token: from the address's fragment once, then from this
// origin's sessionStorage (cookies are shared by every port of 127.0.0.1;
// this is not).
function token() {
  const match = /^#t=([A-Za-z0-9_-]+)$/.exec(location.hash);
  if (match) {
    sessionStorage.setItem("medcrypt-token", match[1]);
    history.replaceState(null, "", "/");
  }
  return sessionStorage.getItem("medcrypt-token") || "";
}

async function api(path, body) {
  const headers = { "X-MedCrypt-Token": token() };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; }
  const response = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin"
  });
  let data = {};
  try { data = await response.json(); } catch (_) { data = { error: await response.text() }; }
  if (!response.ok) { throw data; }
  return data;
}

// Locked meanwhile (idle, or from elsewhere): nothing read stays on screen.
function clearAll() {
  for (const id of ["encrypted", "message", "wire", "pairing-code", "physician-alias", "patient-alias"]) { $(id).value = ""; }
  $("messages").textContent = "";
  $("invitation").hidden = true;
  $("qr").removeAttribute("src");
  $("invite-code").textContent = "";
  $("invite-safety").textContent = "";
  $("paired").hidden = true;
}

async function watchLock() {
  if ($("read-view").hidden) { return; }
  try {
    const data = await api("/api/status");
    if (!data.unlocked) { clearAll(); show(false); say(T.locked); }
  } catch (_) { clearAll(); show(false); }
}

function show(unlocked) {
  if (!unlocked) { clearAll(); }
  $("unlock-view").hidden = unlocked;
  for (const id of ["pair-view", "invite-view", "file-view", "read-view", "write-view", "controls"]) { $(id).hidden = !unlocked; }
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
  token();
  setInterval(watchLock, 20000);
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
  $("pair").addEventListener("click", async () => {
    const body = { alias: $("physician-alias").value };
    const file = $("qr-image").files[0];
    try {
      if (file) {
        body.image = await new Promise((resolve, reject) => {
          const reader = new FileReader();
          reader.onload = () => resolve(reader.result);
          reader.onerror = () => reject({ error: "the picture could not be read" });
          reader.readAsDataURL(file);
        });
      } else {
        body.code = $("pairing-code").value;
      }
      const data = await api("/api/pair", body);
      $("pairing-code").value = "";
      $("qr-image").value = "";
      $("paired").hidden = false;
      $("safety").textContent = data.safety_number;
      const links = $("links");
      links.textContent = "";
      for (const [url, label] of [[data.telegram_link, T.open_telegram], [data.whatsapp_link, T.open_whatsapp]]) {
        if (!url) { continue; }
        const a = document.createElement("a");
        a.href = url; a.textContent = label; a.target = "_blank"; a.rel = "noopener noreferrer";
        links.appendChild(a);
        links.appendChild(document.createElement("br"));
      }
      await loadPairings();
      say(T.paired);
    } catch (e) { if (e.error === "the store is locked") { show(false); } warn(e.error, e.hint); }
  });
  $("invite").addEventListener("click", async () => {
    try {
      const data = await api("/api/invite", { patient: $("patient-alias").value });
      $("qr").src = "data:image/svg+xml;base64," + btoa(data.qr_svg);
      $("invite-code").textContent = data.code;
      $("invite-safety").textContent = data.safety_number;
      $("invitation").hidden = false;
      $("invitation").scrollIntoView();
      await loadPairings();
      say(T.invited);
    } catch (e) { if (e.error === "the store is locked") { show(false); } warn(e.error, e.hint); }
  });
  $("decrypt-file").addEventListener("click", async () => {
    const form = new FormData();
    for (const file of $("encrypted-file").files) { form.append("file", file); }
    try {
      const response = await fetch("/api/file", {
        method: "POST", body: form, credentials: "same-origin", headers: { "X-MedCrypt-Token": token() }
      });
      if (!response.ok) {
        let data = {};
        try { data = await response.json(); } catch (_) { data = { error: await response.text() }; }
        throw data;
      }
      const name = decodeURIComponent(response.headers.get("x-medcrypt-name") || "medcrypt-file");
      const from = decodeURIComponent(response.headers.get("x-medcrypt-from") || "");
      const blob = await response.blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60000);
      $("encrypted-file").value = "";
      say(T.saved(name, from));
    } catch (e) { if (e.error === "the store is locked") { show(false); } warn(e.error, e.hint); }
  });
  $("stop").addEventListener("click", async () => {
    try { await api("/api/stop", {}); } catch (_) { /* stopped */ }
    show(false); $("unlock-view").hidden = true; say(T.stopped);
  });
});
