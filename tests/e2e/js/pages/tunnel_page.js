// Test page: puts the tunnel modules and a few drivers on `window` for Playwright, and
// records every CSP violation so a test can assert there were none.
import * as tunnel from "/static/js/tunnel/index.js";
import * as frames from "/static/js/tunnel/frames.js";
import * as records from "/static/js/tunnel/records.js";
import * as bytes from "/static/js/tunnel/bytes.js";
import * as handshake from "/static/js/tunnel/handshake.js";

window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});

const hex = bytes.toHex;

/** Every value of tunnel-v1.json the technician computes, from the file's inputs. */
async function computeVectors() {
  const v = await (await fetch("/vectors/tunnel-v1.json")).json();
  const out = {};
  // The test imports the fixed private key (WebCrypto takes X25519 private keys only as
  // PKCS#8 or JWK) and reads its public half from the JWK; sessions use generateEphemeral().
  const priv = await crypto.subtle.importKey(
    "pkcs8", bytes.fromHex(v.inputs_pkcs8.technician_ephemeral_private_key), { name: "X25519" }, true, ["deriveKey", "deriveBits"]);
  const jwk = await crypto.subtle.exportKey("jwk", priv);
  const pub = Uint8Array.from(atob(jwk.x.replaceAll("-", "+").replaceAll("_", "/")), (c) => c.charCodeAt(0));
  const ephemeral = await handshake.ephemeralOf(priv, pub);
  out.technician_ephemeral = hex(ephemeral.publicKey);
  out.technician_key_sha256 = ephemeral.keyHash;
  // The X25519 result itself, with bare WebCrypto: the module never lets it out of
  // WebCrypto (it goes straight into HKDF), so this checks the browser's primitive.
  const agentEph = await crypto.subtle.importKey("raw", bytes.fromHex(v.public_keys.agent_ephemeral), { name: "X25519" }, false, []);
  out.shared_secret = hex(new Uint8Array(await crypto.subtle.deriveBits({ name: "X25519", public: agentEph }, priv, 256)));

  const hs = new handshake.TechnicianHandshake({
    ticket: v.ticket.token,
    ephemeral,
    agentIdentity: bytes.fromHex(v.public_keys.agent_identity),
    random: bytes.fromHex(v.inputs.technician_random),
    extractable: true, // only here: so the test can compare the key bytes
  });
  out.hello = hex(hs.hello());
  const keys = await hs.receive(bytes.fromHex(v.handshake.agent_hello));
  out.transcript_hash = hex(keys.transcriptHash);
  out.key_technician_to_agent = hex(new Uint8Array(await crypto.subtle.exportKey("raw", keys.sendKey)));
  out.key_agent_to_technician = hex(new Uint8Array(await crypto.subtle.exportKey("raw", keys.receiveKey)));

  // Technician to agent: our frame encoders, then our sealer.
  const t2a = v.records.technician_to_agent;
  const ourFrames = [
    frames.encodeFrame(frames.FrameType.PING, 0, bytes.fromHex("0102030405060708")),
    frames.openFrame(1, "shell", { cols: 80, rows: 24 }),
    frames.dataFrame(1, bytes.utf8("ls -la\n"), true),
  ];
  out.t2a_frames = ourFrames.map(hex);
  const sealer = new records.RecordSealer(keys.sendKey);
  out.t2a_records = await Promise.all(t2a.map((r) => sealer.seal(bytes.fromHex(r.frame)).then(hex)));
  // Agent to technician: our opener, then our frame parser.
  const opener = new records.RecordOpener(keys.receiveKey);
  out.a2t_frames = [];
  out.a2t_parsed = [];
  for (const r of v.records.agent_to_technician) {
    const plain = await opener.open(bytes.fromHex(r.record));
    out.a2t_frames.push(hex(plain));
    const f = frames.parseFrame(plain);
    out.a2t_parsed.push([f.type, f.flags, f.stream, hex(f.payload)]);
  }
  const goodbye = frames.parseFrame(bytes.fromHex(v.records.agent_to_technician.at(-1).frame));
  out.goodbye = frames.reasonOf(goodbye.payload);

  const refusing = new handshake.TechnicianHandshake({ ticket: v.ticket.token, ephemeral, agentIdentity: bytes.fromHex(v.public_keys.agent_identity) });
  refusing.hello();
  try {
    await refusing.receive(bytes.fromHex(v.refuse.message));
    out.refuse = "accepted";
  } catch (e) {
    out.refuse = { name: e.name, code: e.code, slug: e.slug };
  }
  return out;
}

/** The ways a reply or a record must be refused, each from the vectors with one change. */
async function negativeVectors() {
  const v = await (await fetch("/vectors/tunnel-v1.json")).json();
  const priv = await crypto.subtle.importKey(
    "pkcs8", bytes.fromHex(v.inputs_pkcs8.technician_ephemeral_private_key), { name: "X25519" }, false, ["deriveKey", "deriveBits"]);
  const ephemeral = await handshake.ephemeralOf(priv, bytes.fromHex(v.public_keys.technician_ephemeral));
  const listed = bytes.fromHex(v.public_keys.agent_identity);
  const agentHello = bytes.fromHex(v.handshake.agent_hello);
  const attempt = async (reply, identity = listed, random = v.inputs.technician_random) => {
    const hs = new handshake.TechnicianHandshake({ ticket: v.ticket.token, ephemeral, agentIdentity: identity, random: bytes.fromHex(random) });
    hs.hello();
    try {
      await hs.receive(reply);
      return "accepted";
    } catch (e) {
      return e.name;
    }
  };
  const flip = (data, index) => {
    const copy = data.slice();
    copy[index] ^= 0x01;
    return copy;
  };
  const out = {};
  out.valid = await attempt(agentHello);
  out.other_listed_key = await attempt(agentHello, flip(listed, 0));
  out.flipped_signature = await attempt(flip(agentHello, 120));
  out.flipped_agent_ephemeral = await attempt(flip(agentHello, 10));
  out.other_hello_random = await attempt(agentHello, listed, "00".repeat(32)); // a reply to another HELLO
  out.wrong_version = await attempt(Object.assign(agentHello.slice(), { 5: 2 }));
  out.short = await attempt(agentHello.subarray(0, 165));
  out.bad_magic = await attempt(flip(agentHello, 0));
  out.refuse_too_long = await attempt(bytes.concat(bytes.fromHex(v.refuse.message), new Uint8Array(1)));

  const hs = new handshake.TechnicianHandshake({ ticket: v.ticket.token, ephemeral, agentIdentity: listed, random: bytes.fromHex(v.inputs.technician_random) });
  hs.hello();
  const keys = await hs.receive(agentHello);
  const a2t = v.records.agent_to_technician.map((r) => bytes.fromHex(r.record));
  const openAll = async (list) => {
    const opener = new records.RecordOpener(keys.receiveKey);
    let opened = 0;
    try {
      for (const record of list) {
        await opener.open(record);
        opened += 1;
      }
      return `opened ${opened}`;
    } catch (e) {
      // after one failure the opener refuses even the right next record
      let after;
      try {
        await opener.open(list[opened]);
        after = "opened";
      } catch (e2) {
        after = e2.name;
      }
      return `${e.name} after ${opened}, then ${after}`;
    }
  };
  out.records_in_order = await openAll(a2t);
  out.records_tampered = await openAll([a2t[0], flip(a2t[1], 12), a2t[2]]);
  out.records_header_tampered = await openAll([a2t[0], flip(a2t[1], 7)]);
  out.records_replayed = await openAll([a2t[0], a2t[0]]);
  out.records_reordered = await openAll([a2t[0], a2t[2], a2t[1]]);
  out.records_dropped = await openAll([a2t[0], a2t[2]]);
  out.records_truncated = await openAll([a2t[0].subarray(0, 23)]);
  out.record_reflected = await (async () => {
    // A technician-to-agent record sent back to us does not open (one key per direction).
    const opener = new records.RecordOpener(keys.receiveKey);
    try {
      await opener.open(bytes.fromHex(v.records.technician_to_agent[0].record));
      return "opened";
    } catch (e) {
      return e.name;
    }
  })();
  const bad = (frame) => {
    try {
      frames.parseFrame(bytes.fromHex(frame));
      return "parsed";
    } catch (e) {
      return `${e.name}:${e.code}`;
    }
  };
  out.frames = {
    short: bad("0600000000"),
    unknown_type: bad("090000000000"),
    data_flag_undefined: bad("030200000001"),
    empty_data_without_end: bad("030000000001"),
    ping_on_stream: bad("0600000000010102030405060708"),
    close_on_control: bad("0500000000000000"),
    credit_zero: bad("04000000000100000000"),
    goodbye_bad_utf8: bad("08000000000000ffff"),
    empty_end: bad("030100000001"),
  };
  return out;
}

// --- driving a live session -------------------------------------------------------------

/** A fresh ephemeral key, kept in the page; its public half (base64) goes to the "server". */
async function newEphemeral() {
  window.ephemeral = await tunnel.generateEphemeral();
  return bytes.toBase64(window.ephemeral.publicKey);
}

function describe(error) {
  return { name: error.name, code: error.code ?? null, slug: error.slug ?? null, by: error.by ?? null, message: error.message };
}

/** Joins the relay and runs the handshake with what POST /api/v1/sessions answered. */
async function connectTo(info, options = {}) {
  try {
    const transport = await tunnel.WebSocketTransport.open(info.relay_url, {
      firstMessage: JSON.stringify({ role: "technician", token: info.relay_token }),
    });
    window.tun = await tunnel.connect(transport, {
      ticket: info.ticket,
      ephemeral: window.ephemeral,
      agentIdentity: bytes.fromBase64(info.agent_identity_key),
      options,
    });
    return "open";
  } catch (error) {
    return describe(error);
  }
}

async function sha256(chunks) {
  const all = bytes.concat(...chunks);
  return { sha256: hex(new Uint8Array(await crypto.subtle.digest("SHA-256", all))), size: all.length };
}

function randomBytes(size) {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(size, i + 65536)));
  return out;
}

/** Sends `count` messages of `size` random bytes to the sink; resolves to what the
 *  sink hashed and what we sent. */
async function upload(count, size) {
  const stream = await window.tun.open("sink", {});
  const sent = [];
  for (let i = 0; i < count; i++) {
    const chunk = randomBytes(size);
    sent.push(chunk);
    await stream.send(chunk);
  }
  await stream.send(new Uint8Array(0));
  const reply = await stream.recvJSON();
  await stream.close();
  return { sent: await sha256(sent), sink: reply };
}

/** Takes `count` messages of `size` from the source; resolves to our hash and its. */
async function download(count, size) {
  const stream = await window.tun.open("source", { count, size });
  const got = [];
  for (let i = 0; i < count; i++) got.push(await stream.recv());
  const theirs = bytes.fromUtf8(await stream.recv());
  await stream.close();
  return { got: await sha256(got), source: theirs, sizes: [...new Set(got.map((m) => m.length))] };
}

/** Each message through an echo stream and back; resolves to a list of "same"/"differs". */
async function echoRound(sizes) {
  const stream = await window.tun.open("echo", {});
  const results = [];
  for (const size of sizes) {
    const message = randomBytes(size);
    await stream.send(message);
    const back = await stream.recv();
    results.push(bytes.equalBytes(back, message) ? "same" : `differs at ${size}`);
  }
  await stream.close();
  return results;
}

async function openResult(service, params = {}) {
  try {
    const stream = await window.tun.open(service, params);
    await stream.close();
    return "opened";
  } catch (error) {
    return describe(error);
  }
}

/** Reads the control stream until `count` JSON messages arrived. */
async function controlMessages(count) {
  const out = [];
  while (out.length < count) out.push(await window.tun.control.recvJSON());
  return out;
}

/** Waits for the tunnel to end; resolves to why. */
async function ended() {
  return describe(await window.tun.done);
}

// The agent's end in the page (tunnel/agent.js, the end user's screen share): an identity
// made here, then accept() behind the relay; every stream the technician opens echoes.
let agentIdentity = null;

async function agentKey() {
  agentIdentity = await tunnel.generateIdentity();
  return bytes.toBase64(agentIdentity.publicKey);
}

async function acceptAs(relayUrl, token, serverKeyB64, machineId) {
  const serverKey = await crypto.subtle.importKey("raw", bytes.fromBase64(serverKeyB64), { name: "Ed25519" }, false, ["verify"]);
  const transport = await tunnel.WebSocketTransport.open(relayUrl, { firstMessage: JSON.stringify({ role: "agent", token }) });
  let opened;
  try {
    opened = await tunnel.accept(transport, { serverKey, identity: agentIdentity, machineId });
  } catch (error) {
    return { error: error.name, code: error.code ?? null };
  }
  const t = opened.tunnel;
  const confirmed = await t.confirmed;
  (async () => {
    for (;;) {
      const stream = await t.accept();
      await t.acceptStream(stream);
      (async () => {
        for (;;) await stream.send(await stream.recv());
      })().catch(() => {});
    }
  })().catch(() => {});
  const why = await t.done;
  return { confirmed, code: why.code, by: why.by };
}

window.fjh = {
  tunnel, frames, records, bytes, handshake, computeVectors, negativeVectors,
  newEphemeral, connectTo, upload, download, echoRound, openResult, controlMessages, ended, describe,
  agentKey, acceptAs,
};
document.getElementById("status").textContent = "ready";
