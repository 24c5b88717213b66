// The console's machine list: GET /api/v1/machines, grouped by customer and group, with
// online state and a search box; "Connect" opens the session view for the machine,
// "Sessions" its session history.
// Texts come from data- attributes the template filled from messages.toml.

const root = document.getElementById("machine-list");

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** In the server's one time zone (named in the page's footer), not the browser's. */
function moment(when) {
  const options = { timeZone: root.dataset.timeZone || undefined, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" };
  const locale = root.dataset.lang === "en" ? "en-GB" : "nb-NO";
  try {
    return when.toLocaleString(locale, options);
  } catch {
    return when.toLocaleString(locale);
  }
}

function searchable(machine) {
  return [machine.hostname, machine.customer?.name, machine.group?.name, machine.os, ...(machine.users ?? [])]
    .filter(Boolean)
    .join(" ")
    .toLocaleLowerCase();
}

function render(machines, query) {
  const texts = root.dataset;
  const groups = document.getElementById("machine-groups");
  const words = query.toLocaleLowerCase().split(/\s+/).filter(Boolean);
  const shown = machines.filter((m) => words.every((w) => searchable(m).includes(w)));
  const byCustomer = new Map();
  for (const machine of shown) {
    const customer = machine.customer?.name ?? "";
    const group = machine.group?.name ?? "";
    if (!byCustomer.has(customer)) byCustomer.set(customer, new Map());
    const inGroup = byCustomer.get(customer);
    if (!inGroup.has(group)) inGroup.set(group, []);
    inGroup.get(group).push(machine);
  }
  const collator = new Intl.Collator(texts.lang === "en" ? "en" : "nb");
  const sorted = (keys) => [...keys].sort(collator.compare);
  const sections = [];
  for (const customer of sorted(byCustomer.keys())) {
    const section = element("section", "customer");
    section.append(element("h3", "", customer));
    const inGroup = byCustomer.get(customer);
    for (const group of sorted(inGroup.keys())) {
      const block = element("div", "group");
      block.append(element("h4", "", group));
      const list = element("ul");
      for (const machine of inGroup.get(group).sort((a, b) => collator.compare(a.hostname, b.hostname))) {
        const item = element("li");
        item.dataset.machineId = machine.id;
        item.append(element("span", "name", machine.hostname));
        const state = machine.online
          ? element("span", "state-online", texts.online)
          : element("span", "state-offline", machine.last_seen_at
            ? `${texts.offline} · ${fill(texts.lastSeen, { when: moment(new Date(machine.last_seen_at)) })}`
            : texts.offline);
        item.append(state, element("span", "hint", machine.os ?? ""));
        const link = element("a", "connect", texts.connect);
        link.href = `/console/connect/${encodeURIComponent(machine.id)}`;
        const history = element("a", "history", texts.history);
        history.href = `/portal/machines/${encodeURIComponent(machine.id)}`;
        item.append(link, history);
        list.append(item);
      }
      block.append(list);
      section.append(block);
    }
    sections.push(section);
  }
  groups.replaceChildren(...sections);
  const none = document.getElementById("machine-none");
  none.textContent = texts.noneFound;
  none.hidden = shown.length > 0;
}

async function load() {
  let response;
  try {
    response = await fetch(root.dataset.api, { credentials: "same-origin" });
  } catch {
    response = null;
  }
  if (response?.status === 404) return; // no machine API on this server: the page stays as rendered
  const machines = response?.ok ? await response.json().catch(() => null) : null;
  if (!Array.isArray(machines)) {
    root.hidden = false;
    document.getElementById("machine-none").hidden = false;
    document.getElementById("machine-none").textContent = root.dataset.loadFailed;
    return;
  }
  if (machines.length === 0) return; // the rendered "no machines yet" says it
  document.querySelector('[data-testid="console-empty"]')?.remove();
  root.hidden = false;
  const search = document.getElementById("machine-search");
  search.addEventListener("input", () => render(machines, search.value));
  render(machines, "");
}

if (root) load();
