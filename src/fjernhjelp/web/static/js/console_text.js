// The session view's texts: all of messages.toml's [session] section, handed over by the
// server in the page's JSON config element, in the technician's language.

const config = JSON.parse(document.getElementById("session-config")?.textContent ?? "{}");
const texts = config.texts ?? {};

export { config };

/** The text for `session.<key>`, with {placeholders} filled from `values`. */
export function text(key, values = {}) {
  const raw = texts[`session.${key}`] ?? `session.${key}`;
  return raw.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** A slug from the protocol ("ended-by-user") as a catalogue key part ("ended_by_user"). */
export function keyOf(slug) {
  return String(slug).replaceAll("-", "_");
}

/** The text for `session.<group>.<slug>`, or the group's generic text with the code. */
export function codeText(group, slug, code) {
  const key = `${group}.${keyOf(slug)}`;
  return `session.${key}` in texts ? text(key) : text(`${group}.generic`, { code });
}

export function hasText(key) {
  return `session.${key}` in texts;
}

export function formatBytes(count, lang = config.lang ?? "nb") {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(count);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toLocaleString(lang === "nb" ? "nb-NO" : "en-GB", { maximumFractionDigits: 1 })} ${units[unit]}`;
}

/** A moment in the server's one time zone (settings.time_zone, named in the footer),
 *  never the browser's: every page shows the same clock. */
export function formatMoment(when, { date = true } = {}) {
  const locale = (config.lang ?? "nb") === "nb" ? "nb-NO" : "en-GB";
  const options = { timeZone: config.time_zone || undefined, hour: "2-digit", minute: "2-digit" };
  if (date) Object.assign(options, { year: "numeric", month: "2-digit", day: "2-digit" });
  try {
    return when.toLocaleString(locale, options);
  } catch {
    return when.toLocaleString(locale); // an unknown zone name: the browser's own
  }
}
