// MedCrypt's page: it only moves text between the person and the local
// server; every key and every cipher stays in the medcrypt program.
"use strict";

// Every word the page shows, one table per language.
const STRINGS = {
  en: {
    tagline: "Encrypted messages with your physician or patients.",
    nav_messages: "Messages", nav_files: "Files", nav_pairing: "Pairing", nav_history: "History and keys",
    nav_patients: "Patients", nav_outbox: "Outbox", nav_security: "Audit and backup",
    unlock_title: "Unlock", passphrase: "Passphrase", unlock: "Unlock",
    custodian_link: "Emergency access for custodians (no passphrase)",
    create_title: "Create your MedCrypt store",
    create_help: "Everything MedCrypt keeps is encrypted with this passphrase. Choose one you can remember; nobody can recover it for you without the recovery code shown next.",
    display_name: "Your name (physicians: as patients know you; patients may leave it empty)",
    new_passphrase: "New passphrase", repeat_passphrase: "Repeat the passphrase", create: "Create",
    recovery_help: "Recovery code: write it down now and keep it away from this computer. It is shown only once.",
    verification_help: "Audit verification code: give it to whoever audits this store (physicians). Shown only once.",
    written: "I wrote them down", mismatch: "The two passphrases differ.", created: "Your store is ready. Write down both codes.",
    emergency_title: "Emergency access (custodians)",
    emergency_help: "Two custodians together can open the records when the physician or the patient cannot. Each adds their share page or a photo of its QR code. The access is recorded with your names and the reason, and the physician and the patient are told.",
    share_files: "Share pages or photos", share_text: "Typed shares (one MEDCRYPT-SHARE line each, optional)",
    reason: "Reason", open_shares: "Open with the shares", choose_patient: "Patient whose records to export",
    export_patient: "Export this patient's records", or_rekey: "Or give the store a new passphrase (the physician's old one stops working):",
    rekey_passphrase: "New passphrase for the store", rekey: "Set the new passphrase", back: "Back",
    opened_list: (names) => "Opened by " + names + ". Choose the patient. The opening is recorded and the physician is told; the shares are not used up yet.",
    exported: (n, folder) => n + " item(s) exported to " + folder + ". Recorded in the audit log; the physician and the patient are told. The shares are now retired: a new split is needed.",
    rekeyed: "The store has a new passphrase. New recovery code (shown only now):",
    retired_note: "Recorded in the audit log; the physician is told. The shares are now retired: a new split is needed.",
    audit_ok: (n) => "Audit log checked: " + n + " records intact.", audit_bad: "WARNING: the audit log failed its check: ",
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
    file_title: "Open an encrypted file", file_help: "Choose the .medcrypt file, or every part of a file sent in parts.",
    encrypted_file: "Encrypted file", decrypt_file: "Decrypt file",
    saved: (name, from) => "Decrypted " + name + " (verified, from " + from + "): saved by your browser.",
    history_title: "History", history_from: "From", everyone: "Everyone",
    retention: { "key-lifetime": "Decrypted messages and files are kept as long as their month key, then deleted with it.",
      forever: "Decrypted messages and files are kept for ever." },
    retention_days: (d) => "Decrypted messages and files are kept for " + d + " days, then deleted.",
    expires: (at) => "deleted on " + at, kept: "kept for ever", via: { agent: "by the agent", paste: "pasted", file: "from a file" },
    no_history: "Nothing kept yet.", save_file: "Save", file_not_kept: "(the file itself is not kept here)",
    keys_title: "Keys and when they are destroyed",
    keys_help: "Each month has its own key. It is destroyed 7 days into the next month; after that, messages of that month can no longer be decrypted by anyone.",
    key_state: { current: "this month", grace: "grace period", ahead: "next month", "kept-as-newest": "due, kept as the newest" },
    destroyed_on: (at) => "destroyed on " + at, destroyed_at: (at) => "will be destroyed on " + at,
    legacy: "legacy v1: its keys cannot be destroyed", no_keys: "No pairings, so no keys.",
    patients_title: "Patients", col_patient: "Patient", col_chat: "Chat", col_last: "Last message", col_safety: "Safety number",
    not_connected: "not connected", invite_until: (at) => "invitation valid until " + at, since: (t, at) => t + " since " + at,
    never: "none yet", send_title: "Send through the agent", send_to: "Send to", send_text: "Message to send",
    queue_text: "Queue message", send_file: "File to send", queue_file: "Queue file",
    queued: (id, bound) => "Queued as #" + id + ". " + (bound ? "The agent delivers it; the Outbox shows its state." : "It goes once the patient has connected their chat."),
    outbox_title: "Outbox", col_to: "To", col_kind: "Kind", col_state: "State", col_attempts: "Attempts", col_queued: "Queued",
    col_error: "Last error", retry: "Retry", refresh: "Refresh", retried: (id) => "Outbox item #" + id + " is queued again.",
    empty_outbox: "The outbox is empty.", notices: "Notices for you:",
    audit_title: "Verify the audit log",
    audit_help: "With the verification code shown when the store was made, every earlier day is proven unaltered; with the latest checkpoint kept elsewhere, nothing was cut or rolled back since.",
    audit_code: "Audit verification code", checkpoint: "Latest checkpoint", verify: "Verify",
    verified: (r) => "OK: " + r.records + " records (" + r.entries + " entries, " + r.seals + " day seals) over " + r.days + " days.",
    proven_full: "Proven from the verification code: no entry of an earlier day was altered, removed, reordered or inserted; the log ends where the store sealed it.",
    proven_today: "Checked without the code: the structure, every entry's encryption and today's entries. Give the code to prove earlier days.",
    proven_checkpoint: (cp) => "The log reaches checkpoint #" + cp.seq + " (" + cp.time + ") unchanged.",
    no_checkpoint: "Without a checkpoint kept elsewhere, a roll-back to an older copy is not ruled out.",
    repaired: (seq) => "WARNING: entry #" + seq + " records a repair: the log had been altered before it.",
    take_checkpoint: "Take a checkpoint", checkpoint_taken: "Checkpoint taken: keep this line somewhere else (paper, e-mail to yourself).",
    backup_title: "Backup", backup_file: "Backup file", backup: "Back up",
    backup_help: "The backup opens with this store's passphrase and keeps this month's and last month's keys until the copy itself is deleted: move it off this computer (a USB stick kept safe), and delete old backups.",
    backed_up: (file) => "Backup written to " + file + ". It opens with this store's passphrase; keep it as safe as this computer.",
    kinds: {}
  },
  es: {
    tagline: "Mensajes cifrados con su médico o sus pacientes.",
    nav_messages: "Mensajes", nav_files: "Archivos", nav_pairing: "Emparejar", nav_history: "Historial y claves",
    nav_patients: "Pacientes", nav_outbox: "Bandeja de salida", nav_security: "Auditoría y copia",
    unlock_title: "Desbloquear", passphrase: "Frase de contraseña", unlock: "Desbloquear",
    custodian_link: "Acceso de emergencia para custodios (sin frase de contraseña)",
    create_title: "Cree su almacén de MedCrypt",
    create_help: "Todo lo que MedCrypt guarda se cifra con esta frase de contraseña. Elija una que pueda recordar; nadie puede recuperarla sin el código de recuperación que se muestra a continuación.",
    display_name: "Su nombre (médicos: como lo conocen sus pacientes; los pacientes pueden dejarlo vacío)",
    new_passphrase: "Nueva frase de contraseña", repeat_passphrase: "Repita la frase de contraseña", create: "Crear",
    recovery_help: "Código de recuperación: anótelo ahora y guárdelo lejos de esta computadora. Solo se muestra una vez.",
    verification_help: "Código de verificación de auditoría: entréguelo a quien audite este almacén (médicos). Solo se muestra una vez.",
    written: "Ya los anoté", mismatch: "Las dos frases de contraseña no coinciden.", created: "Su almacén está listo. Anote ambos códigos.",
    emergency_title: "Acceso de emergencia (custodios)",
    emergency_help: "Dos custodios juntos pueden abrir los registros cuando el médico o el paciente no pueden. Cada uno agrega su página de fragmento o una foto de su código QR. El acceso queda registrado con sus nombres y el motivo, y se avisa al médico y al paciente.",
    share_files: "Páginas o fotos de los fragmentos", share_text: "Fragmentos escritos (una línea MEDCRYPT-SHARE cada uno, opcional)",
    reason: "Motivo", open_shares: "Abrir con los fragmentos", choose_patient: "Paciente cuyos registros exportar",
    export_patient: "Exportar los registros de este paciente", or_rekey: "O dé al almacén una nueva frase de contraseña (la anterior del médico deja de funcionar):",
    rekey_passphrase: "Nueva frase de contraseña del almacén", rekey: "Poner la nueva frase de contraseña", back: "Volver",
    opened_list: (names) => "Abierto por " + names + ". Elija el paciente. La apertura queda registrada y se avisa al médico; los fragmentos aún no se han gastado.",
    exported: (n, folder) => n + " elemento(s) exportados a " + folder + ". Registrado en la auditoría; se avisa al médico y al paciente. Los fragmentos quedan retirados: hace falta un nuevo reparto.",
    rekeyed: "El almacén tiene una nueva frase de contraseña. Nuevo código de recuperación (solo se muestra ahora):",
    retired_note: "Registrado en la auditoría; se avisa al médico. Los fragmentos quedan retirados: hace falta un nuevo reparto.",
    audit_ok: (n) => "Auditoría comprobada: " + n + " registros intactos.", audit_bad: "ATENCIÓN: la auditoría no pasó la comprobación: ",
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
    file_title: "Abrir un archivo cifrado", file_help: "Elija el archivo .medcrypt, o todas las partes de un archivo enviado en partes.",
    encrypted_file: "Archivo cifrado", decrypt_file: "Descifrar archivo",
    saved: (name, from) => "Descifrado " + name + " (verificado, de " + from + "): guardado por su navegador.",
    history_title: "Historial", history_from: "De", everyone: "Todos",
    retention: { "key-lifetime": "Los mensajes y archivos descifrados se guardan mientras viva la clave de su mes, y se borran con ella.",
      forever: "Los mensajes y archivos descifrados se guardan para siempre." },
    retention_days: (d) => "Los mensajes y archivos descifrados se guardan " + d + " días y luego se borran.",
    expires: (at) => "se borra el " + at, kept: "se guarda para siempre", via: { agent: "por el agente", paste: "pegado", file: "de un archivo" },
    no_history: "Todavía no hay nada guardado.", save_file: "Guardar", file_not_kept: "(el archivo no se guarda aquí)",
    keys_title: "Claves y cuándo se destruyen",
    keys_help: "Cada mes tiene su propia clave. Se destruye a los 7 días del mes siguiente; después, nadie puede descifrar los mensajes de ese mes.",
    key_state: { current: "este mes", grace: "periodo de gracia", ahead: "mes siguiente", "kept-as-newest": "vencida, se conserva por ser la más nueva" },
    destroyed_on: (at) => "destruida el " + at, destroyed_at: (at) => "se destruirá el " + at,
    legacy: "v1 antigua: sus claves no se pueden destruir", no_keys: "Sin emparejamientos, no hay claves.",
    patients_title: "Pacientes", col_patient: "Paciente", col_chat: "Chat", col_last: "Último mensaje", col_safety: "Número de seguridad",
    not_connected: "sin conectar", invite_until: (at) => "invitación válida hasta " + at, since: (t, at) => t + " desde " + at,
    never: "ninguno aún", send_title: "Enviar por el agente", send_to: "Enviar a", send_text: "Mensaje para enviar",
    queue_text: "Poner mensaje en cola", send_file: "Archivo para enviar", queue_file: "Poner archivo en cola",
    queued: (id, bound) => "En cola como n.º " + id + ". " + (bound ? "El agente lo entrega; la bandeja de salida muestra su estado." : "Saldrá cuando el paciente haya conectado su chat."),
    outbox_title: "Bandeja de salida", col_to: "Para", col_kind: "Tipo", col_state: "Estado", col_attempts: "Intentos", col_queued: "En cola",
    col_error: "Último error", retry: "Reintentar", refresh: "Actualizar", retried: (id) => "El elemento n.º " + id + " vuelve a la cola.",
    empty_outbox: "La bandeja de salida está vacía.", notices: "Avisos para usted:",
    audit_title: "Verificar la auditoría",
    audit_help: "Con el código de verificación mostrado al crear el almacén, se prueba que ningún día anterior fue alterado; con el último punto de control guardado en otro lugar, que nada se cortó ni se volvió atrás desde entonces.",
    audit_code: "Código de verificación de auditoría", checkpoint: "Último punto de control", verify: "Verificar",
    verified: (r) => "Correcto: " + r.records + " registros (" + r.entries + " entradas, " + r.seals + " sellos diarios) en " + r.days + " días.",
    proven_full: "Probado con el código de verificación: ninguna entrada de un día anterior fue alterada, borrada, reordenada ni insertada; la auditoría termina donde el almacén la selló.",
    proven_today: "Comprobado sin el código: la estructura, el cifrado de cada entrada y las entradas de hoy. Dé el código para probar los días anteriores.",
    proven_checkpoint: (cp) => "La auditoría llega sin cambios al punto de control n.º " + cp.seq + " (" + cp.time + ").",
    no_checkpoint: "Sin un punto de control guardado en otro lugar, no se descarta una vuelta a una copia anterior.",
    repaired: (seq) => "ATENCIÓN: la entrada n.º " + seq + " registra una reparación: la auditoría había sido alterada antes.",
    take_checkpoint: "Tomar un punto de control", checkpoint_taken: "Punto de control tomado: guarde esta línea en otro lugar (papel, un correo a usted mismo).",
    backup_title: "Copia de seguridad", backup_file: "Archivo de copia", backup: "Hacer copia",
    backup_help: "La copia se abre con la frase de contraseña de este almacén y conserva las claves de este mes y del anterior hasta que se borre la copia: llévela fuera de esta computadora (una memoria USB guardada con cuidado) y borre las copias antiguas.",
    backed_up: (file) => "Copia escrita en " + file + ". Se abre con la frase de contraseña de este almacén; guárdela tan segura como esta computadora.",
    // The CLI's words are English: each kind of failure also has its own
    // Spanish sentence, shown first.
    kinds: {
      tampered: "Este mensaje o archivo fue alterado, o cifrado con otra clave. No confíe en su contenido.",
      expired: "La clave de ese mes ya fue destruida, o el mensaje aún no es válido.",
      replayed: "Este mensaje ya se descifró antes: alguien puede haberlo reenviado.",
      reflected: "Este mensaje lo envió usted mismo: se lo han devuelto.",
      damaged: "El mensaje o archivo llegó dañado, o no es de MedCrypt. Pida que se lo envíen de nuevo.",
      "unknown-pairing": "Esto se cifró para otro emparejamiento u otro almacén.",
      "wrong-secret": "Frase de contraseña, código o fragmentos incorrectos: no se abrió nada.",
      "audit-failed": "La auditoría no pasó la verificación.",
      escrow: "Los fragmentos no abren este almacén: no se abrió nada.",
      "key-replaced": "Otro programa de MedCrypt cambió la clave del almacén: desbloquee de nuevo.",
      locked: "El almacén está bloqueado: escriba su frase de contraseña.",
      usage: "No se pudo hacer lo pedido.", other: "Algo falló."
    },
    detail: "Detalle (en inglés):"
  }
};
const LANG = (navigator.language || "en").toLowerCase().startsWith("es") ? "es" : "en";
const T = STRINGS[LANG];
const PHYSICIAN_VIEWS = ["patients", "outbox"];

function $(id) { return document.getElementById(id); }
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) { node.textContent = text; }
  if (className) { node.className = className; }
  return node;
}

// "2026-12-08T00:00:00Z" as "2026-12-08 00:00 UTC".
function when(text) {
  const match = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})/.exec(text || "");
  return match ? match[1] + " " + match[2] + " UTC" : (text || "");
}

function say(text) { $("alert").textContent = ""; $("status").textContent = text; }
// An error in the CLI's words and what to do; on a Spanish page, its kind
// in Spanish first.
function warn(error, hint, kind) {
  $("status").textContent = "";
  let text = hint ? error + " — " + T.hint + " " + hint : error;
  if (T.kinds && T.kinds[kind]) { text = T.kinds[kind] + " " + T.detail + " " + text; }
  $("alert").textContent = text;
}
function failed(e) {
  if (e.kind === "locked") { show(false); }
  // Another command replaced the store's key: this unlocking is stale.
  if (e.kind === "key-replaced") { api("/api/lock", {}).catch(() => {}); show(false); }
  warn(e.error, e.hint, e.kind);
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

async function answer(response) {
  let data = {};
  try { data = await response.json(); } catch (_) { data = { error: await response.text() }; }
  if (!response.ok) { throw data; }
  return data;
}

async function api(path, body) {
  const headers = { "X-MedCrypt-Token": token() };
  if (body !== undefined) { headers["Content-Type"] = "application/json"; }
  return answer(await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin"
  }));
}

// A multipart POST; a download when the answer is a file.
async function upload(path, form) {
  return fetch(path, { method: "POST", body: form, credentials: "same-origin", headers: { "X-MedCrypt-Token": token() } });
}

// Hands a decrypted file from the server to the browser to save.
async function save(response) {
  if (!response.ok) { await answer(response); }
  const name = decodeURIComponent(response.headers.get("x-medcrypt-name") || "medcrypt-file");
  const from = decodeURIComponent(response.headers.get("x-medcrypt-from") || "");
  const blob = await response.blob();
  const a = el("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  say(T.saved(name, from));
}

// Locked meanwhile (idle, or from elsewhere): nothing read stays on screen.
function clearAll() {
  for (const node of document.querySelectorAll("[data-clear]")) {
    if ("value" in node && node.tagName !== "OL" && node.tagName !== "UL") { node.value = ""; } else { node.textContent = ""; }
  }
  for (const id of ["qr-image", "encrypted-file", "send-file", "share-files"]) { $(id).value = ""; }
  for (const id of ["to", "send-to", "history-from"]) { $(id).textContent = ""; }
  for (const id of ["invitation", "paired", "credentials", "emergency-patients"]) { $(id).hidden = true; }
  $("qr").removeAttribute("src");
}

let storeExists = true;
function showLocked() {
  $("nav").hidden = true;
  $("controls").hidden = true;
  for (const view of document.querySelectorAll(".view")) { view.hidden = true; }
  $("unlock-view").hidden = !storeExists;
  $("create-view").hidden = storeExists;
}

function show(unlocked) {
  if (!unlocked) { clearAll(); showLocked(); return; }
  $("unlock-view").hidden = true;
  $("create-view").hidden = true;
  $("nav").hidden = false;
  $("controls").hidden = false;
  view("messages");
}

async function view(name) {
  $("status").textContent = "";
  $("alert").textContent = "";
  for (const section of document.querySelectorAll(".view")) { section.hidden = section.id !== name + "-view"; }
  for (const button of document.querySelectorAll("#nav button")) {
    button.setAttribute("aria-current", button.dataset.view === name ? "page" : "false");
  }
  try {
    if (name === "history") { await loadHistory(); }
    if (name === "patients") { await loadOverview(); }
    if (name === "outbox") { await loadOutbox(); }
    if (name === "security") { await loadOverview(); }
  } catch (e) { failed(e); }
}

let stopped = false;
async function watchLock() {
  if (stopped) { return; }
  try {
    const data = await api("/api/status");
    storeExists = data.store_exists;
    if (!data.unlocked && !$("nav").hidden) { clearAll(); showLocked(); say(T.locked); }
  } catch (_) { if (!$("nav").hidden) { clearAll(); showLocked(); } }
}

function fill(select, aliases, withEveryone) {
  const chosen = select.value;
  select.textContent = "";
  if (withEveryone) { const all = el("option", T.everyone); all.value = ""; select.appendChild(all); }
  for (const alias of aliases) { const option = el("option", alias); option.value = alias; select.appendChild(option); }
  if (aliases.includes(chosen)) { select.value = chosen; }
}

let overview = null;
async function loadOverview() {
  overview = await api("/api/overview");
  const all = overview.pairings.map((p) => p.alias);
  const patients = overview.pairings.filter((p) => p.physician).map((p) => p.alias);
  fill($("to"), all, false);
  fill($("send-to"), patients, false);
  fill($("history-from"), all, true);
  for (const button of document.querySelectorAll("#nav .physician")) { button.hidden = patients.length === 0; }
  const rows = $("patients");
  rows.textContent = "";
  for (const p of overview.pairings.filter((p) => p.physician)) {
    const row = el("tr");
    row.appendChild(el("td", p.alias));
    let chat = T.not_connected;
    if (p.chat) { chat = T.since(p.chat.transport === "whatsapp" ? "WhatsApp" : "Telegram", when(p.chat.bound_at)); }
    else if (p.invite_expires) { chat = T.not_connected + " (" + T.invite_until(when(p.invite_expires)) + ")"; }
    row.appendChild(el("td", chat));
    row.appendChild(el("td", p.last_message ? when(p.last_message) : T.never));
    row.appendChild(el("td", p.safety_number || ""));
    rows.appendChild(row);
  }
  if (!$("backup-file").value) { $("backup-file").value = overview.backup_suggestion; }
  const policy = overview.retention;
  $("retention").textContent = T.retention[policy] || T.retention_days(parseInt(policy, 10));
  const keys = $("keys");
  keys.textContent = "";
  if (overview.keys.length === 0) { keys.appendChild(el("p", T.no_keys)); }
  for (const pairing of overview.keys) {
    keys.appendChild(el("h3", pairing.alias));
    const list = el("ul");
    if (pairing.legacy) { list.appendChild(el("li", T.legacy)); }
    for (const k of pairing.keys) { list.appendChild(el("li", k.epoch + " — " + T.key_state[k.state] + ", " + T.destroyed_at(when(k.due_at)))); }
    for (const d of pairing.destroyed) { list.appendChild(el("li", d.epoch + " — " + T.destroyed_on(when(d.destroyed_at)), "gone")); }
    keys.appendChild(list);
  }
}

async function loadHistory() {
  await loadOverview();
  const data = await api("/api/history", { from: $("history-from").value });
  const list = $("history");
  list.textContent = "";
  if (data.items.length === 0) { list.appendChild(el("li", T.no_history)); }
  for (const item of data.items) {
    const entry = el("li");
    const head = when(item.received_at) + " · " + T.from + ": " + item.alias + " · " +
      (T.via[item.via] || item.via) + " · " + (item.expires_at ? T.expires(when(item.expires_at)) : T.kept);
    entry.appendChild(el("span", head, "from"));
    if (item.text !== undefined) { entry.appendChild(el("span", item.text, "body")); }
    if (item.file) {
      const line = el("span", item.file.name + " (" + item.file.size + " bytes) ", "body");
      if (item.file.stored) {
        const button = el("button", T.save_file);
        button.type = "button";
        button.setAttribute("aria-label", T.save_file + " " + item.file.name);
        button.addEventListener("click", async () => {
          try {
            await save(await fetch("/api/history-file", {
              method: "POST", credentials: "same-origin",
              headers: { "X-MedCrypt-Token": token(), "Content-Type": "application/json" },
              body: JSON.stringify({ id: item.id })
            }));
          } catch (e) { failed(e); }
        });
        line.appendChild(button);
      } else { line.appendChild(document.createTextNode(T.file_not_kept)); }
      entry.appendChild(line);
    }
    list.appendChild(entry);
  }
}

async function loadOutbox() {
  const data = await api("/api/outbox");
  const notices = $("notices");
  notices.textContent = "";
  if (data.notices.length > 0) {
    notices.appendChild(el("li", T.notices, "from"));
    for (const n of data.notices) { notices.appendChild(el("li", when(n.created_at) + "  " + n.text)); }
  }
  const rows = $("outbox");
  rows.textContent = "";
  if (data.items.length === 0) { const row = el("tr"); row.appendChild(el("td", T.empty_outbox)); rows.appendChild(row); }
  for (const item of data.items) {
    const row = el("tr");
    for (const value of [item.id, item.to, item.kind, item.state, item.attempts, when(item.queued), item.last_error || ""]) {
      row.appendChild(el("td", String(value)));
    }
    const cell = el("td");
    if (item.retry) {
      const button = el("button", T.retry);
      button.type = "button";
      button.setAttribute("aria-label", T.retry + " #" + item.id);
      button.addEventListener("click", async () => {
        try { await api("/api/outbox-retry", { id: item.id }); await loadOutbox(); say(T.retried(item.id)); }
        catch (e) { failed(e); }
      });
      cell.appendChild(button);
    }
    row.appendChild(cell);
    rows.appendChild(row);
  }
}

function on(id, handler) {
  $(id).addEventListener("click", async () => {
    try { await handler(); } catch (e) { failed(e); }
  });
}

async function afterUnlock() {
  show(true);
  await loadOverview();
}

document.addEventListener("DOMContentLoaded", async () => {
  token();
  setInterval(watchLock, 5000);
  document.documentElement.lang = LANG;
  for (const node of document.querySelectorAll("[data-t]")) {
    const value = T[node.dataset.t];
    if (typeof value === "string") { node.textContent = value; }
  }
  $("qr").alt = LANG === "es" ? "Código QR de emparejamiento" : "Pairing QR code";
  for (const button of document.querySelectorAll("#nav button")) {
    button.addEventListener("click", () => view(button.dataset.view));
  }
  await watchLock();
  showLocked();

  $("unlock-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("/api/unlock", { passphrase: $("passphrase").value });
      $("passphrase").value = "";
      await afterUnlock();
      say(T.unlocked);
    } catch (e) { warn(e.error, e.hint, e.kind); }
  });
  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if ($("new-passphrase").value !== $("repeat-passphrase").value) { warn(T.mismatch); return; }
    try {
      const data = await api("/api/create", { name: $("display-name").value, passphrase: $("new-passphrase").value });
      $("new-passphrase").value = ""; $("repeat-passphrase").value = "";
      $("create-form").hidden = true;
      $("recovery-code").textContent = data.recovery;
      $("verification-code").textContent = data.verification;
      $("credentials").hidden = false;
      storeExists = true;
      say(T.created);
    } catch (e) { warn(e.error, e.hint, e.kind); }
  });
  on("written", async () => {
    $("recovery-code").textContent = ""; $("verification-code").textContent = "";
    $("credentials").hidden = true;
    await afterUnlock();
    say(T.unlocked);
  });

  // Emergency access: first the list of patients, then the export or a
  // new passphrase, each a combine with the same shares and reason.
  const emergency = (mode, extra) => {
    const form = new FormData();
    for (const file of $("share-files").files) { form.append("share", file); }
    form.append("share_text", $("share-text").value);
    form.append("reason", $("reason").value);
    form.append("mode", mode);
    for (const [k, v] of Object.entries(extra || {})) { form.append(k, v); }
    return upload("/api/emergency", form).then(answer);
  };
  const auditLine = (data) => data.audit.ok ? T.audit_ok(data.audit.records) : T.audit_bad + data.audit.fault;
  on("to-emergency", async () => {
    $("unlock-view").hidden = true; $("create-view").hidden = true;
    $("emergency-view").hidden = false;
  });
  on("back-to-unlock", async () => { clearAll(); showLocked(); });
  on("open-shares", async () => {
    const data = await emergency("patients");
    const choices = $("patient-choices");
    choices.textContent = "";
    data.patients.forEach((p, i) => {
      const id = "patient-choice-" + i;
      const input = el("input");
      input.type = "radio"; input.name = "patient"; input.value = p.alias; input.id = id;
      const label = el("label", p.alias + (p.peer_name ? " (" + p.peer_name + ")" : "") + ", " + p.paired);
      label.htmlFor = id;
      const line = el("div", undefined, "choice");
      line.appendChild(input); line.appendChild(label);
      choices.appendChild(line);
    });
    $("emergency-patients").hidden = false;
    say(T.opened_list(data.custodians) + " " + auditLine(data));
  });
  on("export-patient", async () => {
    const chosen = document.querySelector("input[name=patient]:checked");
    const data = await emergency("export", { patient: chosen ? chosen.value : "" });
    $("emergency-patients").hidden = true;
    $("emergency-result").textContent = "";
    $("share-files").value = ""; $("share-text").value = ""; $("reason").value = "";
    say(T.exported(data.exported, data.folder) + " " + auditLine(data));
  });
  on("rekey", async () => {
    if ($("rekey-passphrase").value !== $("rekey-repeat").value) { warn(T.mismatch); return; }
    const data = await emergency("rekey", { passphrase: $("rekey-passphrase").value });
    $("rekey-passphrase").value = ""; $("rekey-repeat").value = "";
    $("share-files").value = ""; $("share-text").value = ""; $("reason").value = "";
    $("emergency-patients").hidden = true;
    const result = $("emergency-result");
    result.textContent = "";
    result.appendChild(el("p", T.rekeyed));
    result.appendChild(el("p", data.recovery, "code"));
    result.appendChild(el("p", T.retired_note + " " + auditLine(data)));
    say(T.retired_note);
  });

  on("decrypt", async () => {
    const list = $("messages");
    list.textContent = "";
    const data = await api("/api/decrypt", { text: $("encrypted").value });
    let good = 0;
    const problems = [];
    for (const m of data.messages) {
      const item = el("li");
      if (m.ok) {
        good += 1;
        item.appendChild(el("span", T.from + ": " + m.from + (m.read_before ? " " + T.read_before : ""), "from"));
        item.appendChild(document.createTextNode(m.text));
      } else {
        item.className = "bad";
        item.textContent = (T.kinds[m.kind] ? T.kinds[m.kind] + " " : "") + m.error + (m.hint ? " — " + T.hint + " " + m.hint : "");
        problems.push(m);
      }
      list.appendChild(item);
    }
    if (problems.length > 0) { warn(problems[0].error, problems[0].hint, problems[0].kind); }
    else { say(T.found(good)); }
  });
  on("encrypt", async () => {
    const data = await api("/api/encrypt", { to: $("to").value, text: $("message").value });
    $("wire").value = data.wire;
    say(T.encrypted);
  });
  $("copy").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("wire").value); say(T.copied); }
    catch (_) { $("wire").select(); document.execCommand("copy"); say(T.copied); }
  });
  $("lock").addEventListener("click", async () => {
    try { await api("/api/lock", {}); } catch (_) { /* locked anyway */ }
    show(false); say(T.locked);
  });
  on("pair", async () => {
    const body = { alias: $("physician-alias").value };
    const file = $("qr-image").files[0];
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
      const a = el("a", label);
      a.href = url; a.target = "_blank"; a.rel = "noopener noreferrer";
      links.appendChild(a);
      links.appendChild(el("br"));
    }
    await loadOverview();
    say(T.paired);
  });
  on("invite", async () => {
    const data = await api("/api/invite", { patient: $("patient-alias").value });
    $("qr").src = "data:image/svg+xml;base64," + btoa(data.qr_svg);
    $("invite-code").textContent = data.code;
    $("invite-safety").textContent = data.safety_number;
    $("invitation").hidden = false;
    $("invitation").scrollIntoView();
    await loadOverview();
    say(T.invited);
  });
  on("decrypt-file", async () => {
    const form = new FormData();
    for (const file of $("encrypted-file").files) { form.append("file", file); }
    await save(await upload("/api/file", form));
    $("encrypted-file").value = "";
  });
  $("history-from").addEventListener("change", () => view("history"));
  on("refresh-history", () => view("history"));
  on("queue-text", async () => {
    const data = await api("/api/send", { to: $("send-to").value, text: $("send-text").value });
    $("send-text").value = "";
    say(T.queued(data.id, data.bound));
  });
  on("queue-file", async () => {
    const form = new FormData();
    form.append("to", $("send-to").value);
    for (const file of $("send-file").files) { form.append("file", file); }
    const data = await answer(await upload("/api/send-file", form));
    $("send-file").value = "";
    say(T.queued(data.id, data.bound));
  });
  on("refresh-outbox", loadOutbox);
  on("verify", async () => {
    const result = $("audit-result");
    result.textContent = "";
    const r = await api("/api/audit-verify", { code: $("audit-code").value, checkpoint: $("checkpoint").value });
    $("audit-code").value = "";
    const lines = [T.verified(r), r.full ? T.proven_full : T.proven_today, r.checkpoint ? T.proven_checkpoint(r.checkpoint) : T.no_checkpoint];
    for (const seq of r.repairs) { lines.push(T.repaired(seq)); }
    for (const line of lines) { result.appendChild(el("p", line)); }
    say(T.verified(r));
  });
  on("take-checkpoint", async () => {
    const data = await api("/api/checkpoint", {});
    $("checkpoint-line").textContent = data.line;
    $("checkpoint").value = data.line;
    say(T.checkpoint_taken);
  });
  on("backup", async () => {
    const data = await api("/api/backup", { file: $("backup-file").value });
    say(T.backed_up(data.file));
  });
  on("stop", async () => {
    stopped = true;
    try { await api("/api/stop", {}); } catch (_) { /* stopped */ }
    clearAll(); showLocked(); $("unlock-view").hidden = true; $("create-view").hidden = true; say(T.stopped);
  });
});
