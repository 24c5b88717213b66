// The panels of the session view, each on its own stream of the tunnel: desktop (with
// keys, clipboard, scaling, full screen), chat, files, terminal and system information.
// Everything from the agent is shown with textContent, never parsed as markup.

import { Chat } from "./chat.js";
import { openDesktop } from "./desktop.js";
import { openScreen } from "./screen.js";
import { TransferError, download, upload } from "./files.js";
import { sendCombo } from "./keys.js";
import { ShellRefused, openTerminal } from "./terminal.js";
import { attachTextInput } from "./textinput.js";
import { StreamCode } from "./tunnel/codes.js";
import { codeText, formatBytes, formatMoment, text } from "./console_text.js";

const $ = (id) => document.getElementById(id);

/** Why a stream could not be opened, for the person. */
export function streamFailure(error) {
  if (error?.code === StreamCode.REFUSED) return text("stream.refused");
  if (error?.code === StreamCode.UNKNOWN_SERVICE) return text("stream.unavailable");
  return text("stream.failed", { reason: error?.slug ?? error?.message ?? String(error) });
}

export async function startDesktop(tunnel, { control, clipboard, onConnect }) {
  $("desktop-panel").hidden = false;
  // No clipboard controls without the permission (the agent refuses the text anyway).
  $("clipboard-panel").hidden = !clipboard;
  $("view-only").hidden = control;
  $("clipboard-send").disabled = !clipboard;
  const status = $("desktop-status");
  let viewer;
  try {
    viewer = await openDesktop(tunnel, $("desktop"), { viewOnly: !control, scale: $("scale").checked });
  } catch (error) {
    status.textContent = text("desktop.unavailable");
    return null;
  }
  const { rfb, opened } = viewer;
  if (control) attachTextInput(rfb, $("desktop")).catch(() => {}); // keys still reach the canvas
  opened.catch((error) => {
    status.textContent = streamFailure(error);
  });
  rfb.addEventListener("connect", () => {
    status.textContent = "";
    onConnect();
  });
  rfb.addEventListener("disconnect", () => {
    if (!status.textContent) status.textContent = text("desktop.disconnected");
  });
  if (clipboard) {
    rfb.addEventListener("clipboard", (event) => {
      $("clipboard-remote").value = event.detail.text;
      navigator.clipboard?.writeText(event.detail.text).catch(() => {}); // only if permitted
    });
    $("clipboard-send").addEventListener("click", () => rfb.clipboardPasteFrom($("clipboard-local").value));
  }
  $("ctrl-alt-del").addEventListener("click", () => sendCombo(rfb, "ctrl-alt-del"));
  $("send-combo").addEventListener("click", () => sendCombo(rfb, $("key-combo").value));
  $("scale").addEventListener("change", (event) => {
    rfb.scaleViewport = event.target.checked;
  });
  $("fullscreen").addEventListener("click", () => {
    $("desktop").requestFullscreen?.().catch(() => {});
  });
  return rfb;
}

/** A screen shared from the end user's browser (screen.js): video where the desktop
 *  usually is, view only, no desktop toolbar. */
export async function startScreen(tunnel, { onConnect }) {
  $("desktop-panel").hidden = false;
  $("desktop-panel").querySelector(".toolbar").hidden = true;
  const status = $("desktop-status");
  status.textContent = text("share.view_only");
  try {
    const screen = await openScreen(tunnel, $("desktop"), { onFrame: (count) => count === 1 && onConnect() });
    // Pointing: a click on the picture shows the end user where (share.js).
    screen.canvas.addEventListener("click", (event) => {
      const box = screen.canvas.getBoundingClientRect();
      screen.point((event.clientX - box.left) / box.width, (event.clientY - box.top) / box.height);
    });
  } catch (error) {
    status.textContent = error?.message === "no-decoder" ? text("share.no_decoder") : streamFailure(error);
  }
}

export async function startChat(tunnel, { endText }) {
  const panel = $("chat-panel");
  panel.hidden = false;
  const log = $("chat-log");
  const show = (message, mine) => {
    const item = document.createElement("li");
    item.className = mine ? "mine" : "theirs";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = text(mine ? "chat.you" : "chat.user");
    const body = document.createElement("span");
    body.className = "text";
    body.textContent = message.text;
    const at = document.createElement("time");
    at.dateTime = message.at;
    const when = new Date(message.at);
    at.textContent = Number.isNaN(when.getTime()) ? "" : formatMoment(when, { date: false });
    item.append(who, body, at);
    log.append(item);
    log.scrollTop = log.scrollHeight;
  };
  let chat;
  try {
    chat = await Chat.open(tunnel, { onMessage: (message) => show(message, false) });
  } catch (error) {
    const item = document.createElement("li");
    item.textContent = streamFailure(error);
    log.append(item);
    $("chat-form").hidden = true;
    return;
  }
  chat.ended.then(() => {
    // The session ended (say why, as the page does), or the user's side closed the chat
    // (a refused message, the window gone).
    const item = document.createElement("li");
    item.className = "note";
    item.textContent = tunnel.closed
      ? text("chat.ended_with_session", { reason: endText(tunnel.closed) })
      : text("chat.closed_at_machine");
    log.append(item);
    $("chat-form").hidden = true;
  });
  $("chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("chat-text");
    if (!input.value.trim()) return;
    const sent = await chat.send(input.value).catch(() => null);
    if (sent) {
      show(sent, true);
      input.value = "";
    }
  });
}

/** Asks in the page whether to replace `path` on the machine; resolves true for yes. */
function confirmOverwrite(path) {
  const dialog = $("overwrite-dialog");
  $("overwrite-question").textContent = text("files.replace_question", { name: path });
  dialog.returnValue = "";
  return new Promise((resolve) => {
    // Escape or the cancel button: no. Only the replace button says yes.
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "replace"), { once: true });
    dialog.showModal();
  });
}

export function startFiles(tunnel) {
  $("files-panel").hidden = false;
  const status = $("files-status");
  const bar = $("files-progress");
  const progress = (name) => (done, total) => {
    bar.hidden = false;
    bar.max = Math.max(total, 1);
    bar.value = done;
    status.textContent = text("files.progress", { name, done, total });
  };
  const failed = (error) => {
    bar.hidden = true;
    status.textContent = text("files.failed", { message: error.detail ?? streamFailure(error) });
  };
  $("upload-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("upload-file").files[0];
    if (!file) return;
    const path = $("upload-path").value.trim() || file.name;
    const send = (overwrite) => upload(tunnel, file, path, { onProgress: progress(file.name), overwrite });
    try {
      let result;
      try {
        result = await send(false);
      } catch (error) {
        if (!(error instanceof TransferError) || error.code !== "exists" || !error.path) throw error;
        // Nothing moved yet: the agent refuses before any data unless told to replace.
        bar.hidden = true;
        if (!(await confirmOverwrite(error.path))) {
          status.textContent = text("files.not_replaced", { name: error.path });
          return;
        }
        result = await send(true);
      }
      status.textContent = text("files.uploaded", { name: result.path, size: result.size });
    } catch (error) {
      failed(error);
    }
  });
  $("download-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const path = $("download-path").value.trim();
    if (!path) return;
    try {
      const { blob, name, size } = await download(tunnel, path, { onProgress: progress(path) });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = name;
      link.hidden = true;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
      status.textContent = text("files.downloaded", { name, size });
    } catch (error) {
      failed(error);
    }
  });
}

/** Why the agent refused or ended a shell, as one sentence in the page's language. */
export function shellRefusal(code) {
  return codeText("terminal.refused", code, code);
}

/**
 * The technician picks the account when the agent offers two (the agent's default is
 * preselected); one is taken without asking. Resolves to a run_as.
 */
function chooseAccount(offer) {
  if (offer.choices.length === 1) return offer.default;
  const form = $("terminal-choose");
  const list = $("terminal-choices");
  list.replaceChildren();
  for (const choice of offer.choices) {
    const label = document.createElement("label");
    label.className = "check";
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "run_as";
    radio.value = choice.run_as;
    radio.checked = choice.run_as === offer.default;
    label.append(radio, " ", text(`terminal.as_${choice.run_as}`, { account: choice.account }));
    list.append(label);
  }
  form.hidden = false;
  return new Promise((resolve) => {
    form.addEventListener(
      "submit",
      (event) => {
        event.preventDefault();
        form.hidden = true;
        resolve(new FormData(form).get("run_as") || offer.default);
      },
      { once: true },
    );
  });
}

export function startTerminal(tunnel) {
  $("terminal-panel").hidden = false;
  const button = $("terminal-open");
  const status = $("terminal-status");
  let shell = null;
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "";
    shell?.dispose(); // the last shell's terminal, ended: one terminal in the panel at a time
    shell = null;
    try {
      shell = await openTerminal(tunnel, $("terminal"), { choose: chooseAccount });
    } catch (error) {
      status.textContent = error instanceof ShellRefused ? shellRefusal(error.code) : streamFailure(error);
      button.disabled = tunnel.closed !== null;
      return;
    }
    status.textContent = text("terminal.running", { account: shell.offer.choices.find((c) => c.run_as === shell.runAs)?.account ?? shell.runAs });
    shell.term.focus();
    const outcome = await shell.ended;
    if ("exit" in outcome) status.textContent = text("terminal.exited", { code: outcome.exit });
    else if ("error" in outcome) status.textContent = shellRefusal(outcome.error.code);
    else status.textContent = text("terminal.closed");
    button.disabled = tunnel.closed !== null;
  });
}

const INFO_FIELDS = ["hostname", "os_name", "kernel", "architecture", "users", "agent_version", "cpu_count", "memory_bytes", "boot_time"];

/** Shows a {"type": "sysinfo", ...} control message (fields inline, or under "info"). */
export function showSysinfo(message) {
  const info = message.info && typeof message.info === "object" ? message.info : message;
  const list = $("sysinfo");
  list.replaceChildren();
  for (const field of INFO_FIELDS) {
    let value = info[field];
    if (value === undefined || value === null) continue;
    if (field === "users" && Array.isArray(value)) value = value.join(", ");
    else if (field === "memory_bytes" && Number.isFinite(value)) value = formatBytes(value);
    else if (field === "boot_time") {
      const when = new Date(value);
      value = Number.isNaN(when.getTime()) ? value : formatMoment(when);
    }
    const term = document.createElement("dt");
    term.textContent = text(`info.${field}`);
    const description = document.createElement("dd");
    description.textContent = String(value).slice(0, 500);
    description.dataset.field = field;
    list.append(term, description);
  }
  $("sysinfo-waiting").hidden = list.childElementCount > 0;
}

export { codeText };
