// The dashboard: a client of the public /v2 API, views chosen by the URL's hash (#/loras, #/loras/{id}, #/new, #/credits).
import * as api from "./api.js";
import * as photos from "./photos.js";

/** @typedef {import("./api.js").Problem} Problem */
/**
 * @typedef {{ id: string, name: string, subjectKind: string, gender: string | null, ethnicity: string | null, age: string | null,
 *   status: string, imageCount: number, steps: number, loraRank: number, isReady: boolean, hasWeights: boolean,
 *   triggerWord: string | null, progress: { step: number, totalSteps: number, etaSeconds: number | null, phase: string } | null,
 *   error: { code: string, message: string } | null, createdAt: string, startedAt: string | null, completedAt: string | null,
 *   archivedAt: string | null }} Lora
 */

const TERMINAL = ["READY", "FAILED", "ARCHIVED"];
// A browser opens about six connections per host over HTTP/1.1: a few streams, the other LoRAs are polled.
const MAX_STREAMS = 3;
const POLL_MS = 2000;

/**
 * Replaces an element's children, leaving out the absent ones (null would otherwise be shown as the text "null").
 * @param {Element} el
 * @param {...(Node | string | null | undefined | false)} children
 */
const fill = (el, ...children) => el.replaceChildren(.../** @type {(Node | string)[]} */ (children.filter(c => c !== null && c !== undefined && c !== false)));

const $ = (/** @type {string} */ selector, /** @type {ParentNode} */ root = document) => /** @type {HTMLElement} */ (root.querySelector(selector));

/**
 * Builds an element; children that are null, undefined or false are left out. Text is always text, never markup.
 * @param {string} tag
 * @param {Record<string, any>} [attrs]
 * @param {...any} children
 */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k in el && !k.includes("-") && k !== "list") /** @type {any} */ (el)[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  el.append(...children.flat().filter(c => c !== null && c !== undefined && c !== false));
  return el;
}

const state = {
  /** @type {Map<string, Lora>} */ loras: new Map(),
  /** @type {string[]} */ order: [],
  /** @type {string | null} */ cursor: null,
  /** @type {string | null} */ selected: null,
  /** @type {Map<string, AbortController>} */ watchers: new Map(),
  streams: 0,
  /** @type {photos.Photo[]} */ photos: [],
  /** @type {string | null} */ ledgerCursor: null,
};

// ---- problems and announcements ----------------------------------------------------------------------------------

/**
 * Shows problems as the API wrote them: title, status and code, detail, per-field errors, trace id.
 * @param {HTMLElement} box
 * @param {Problem | Problem[]} problems
 */
function showProblem(box, problems) {
  const list = Array.isArray(problems) ? problems : [problems];
  box.replaceChildren(...list.map(p => h("div", { class: "problem-item" },
    h("p", { class: "problem-title" }, p.title,
      (p.status || p.code) && h("span", { class: "problem-code" }, [p.status, p.code].filter(Boolean).join(" "))),
    p.detail && h("p", {}, p.detail),
    p.errors && h("ul", {}, Object.entries(p.errors).flatMap(([field, messages]) =>
      messages.map(m => h("li", {}, h("code", {}, field), " ", m)))),
    p.local ? h("p", { class: "hint" }, "Checked in this browser; nothing was sent.")
      : p.traceId && h("p", { class: "hint" }, "Trace id ", h("code", {}, p.traceId)))));
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

/** @param {HTMLElement} box */
const clearProblem = box => { box.hidden = true; box.replaceChildren(); };

/** @param {string} text */
function announce(text) {
  const region = $("#announce");
  region.textContent = "";
  setTimeout(() => { region.textContent = text; }, 50);
}

/**
 * Runs an action and shows its refusal in <box>; a 401 signs out (the key was revoked or mistyped).
 * @param {HTMLElement} box
 * @param {() => Promise<unknown>} action
 */
async function attempt(box, action) {
  clearProblem(box);
  try {
    await action();
  } catch (e) {
    if (!(e instanceof api.ProblemError)) throw e;
    if (e.problem.status === 401 && api.apiKey()) signOut(e.problem);
    else showProblem(box, e.problem);
  }
}

// ---- formatting --------------------------------------------------------------------------------------------------

const when = (/** @type {string | null} */ iso) => iso ? new Date(iso).toLocaleString() : "—";
const number = (/** @type {number} */ n) => n.toLocaleString();

/** @param {number} s */
function duration(s) {
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

/** @param {Lora} l */
function progressText(l) {
  const p = l.progress;
  switch (l.status) {
    case "PENDING": return "Queued: waiting for a worker.";
    case "UPLOADING": return p ? `Captioning photos: ${p.step} of ${p.totalSteps}.` : "Preparing the photos.";
    case "TRAINING": return p ? `Training: step ${p.step} of ${p.totalSteps}${p.etaSeconds != null ? `, about ${duration(p.etaSeconds)} left` : ""}.` : "Training.";
    case "READY": return `Ready. Trigger word ${l.triggerWord}.`;
    case "FAILED": return l.error ? `Failed: ${l.error.message} (${l.error.code})` : "Failed.";
    default: return l.triggerWord ? `Archived. Trigger word ${l.triggerWord}.` : "Archived.";
  }
}

/** @param {Lora} l */
function progressBar(l) {
  if (!l.progress || TERMINAL.includes(l.status)) return null;
  return h("progress", { max: l.progress.totalSteps, value: l.progress.step, "aria-label": `${l.name}: ${progressText(l)}` });
}

const badge = (/** @type {string} */ status) => h("span", { class: `badge s-${status.toLowerCase()}` }, status);

// ---- sign-in -----------------------------------------------------------------------------------------------------

async function refreshTeam() {
  const team = await api.get("/v2/team");
  const credits = $("#credits");
  credits.textContent = `${number(team.credits)} credits`;
  credits.hidden = false;
  return team;
}

/** @param {Problem} [problem] */
function signOut(problem) {
  api.setApiKey(null);
  for (const c of state.watchers.values()) c.abort();
  state.watchers.clear();
  state.loras.clear();
  state.order = [];
  for (const id of ["#nav", "#credits", "#sign-out"]) $(id).hidden = true;
  location.hash = "#/signin";
  route();
  if (problem) showProblem($("#signin-form .problem"), problem);
}

$("#signin-form").addEventListener("submit", async e => {
  e.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($("#api-key"));
  const box = $("#signin-form .problem");
  api.setApiKey(input.value.trim());
  await attempt(box, async () => {
    await refreshTeam();
    input.value = "";
    signedIn();
    route();
  });
  if (!box.hidden) api.setApiKey(null);
});

$("#sign-out").addEventListener("click", () => signOut());

function signedIn() {
  for (const id of ["#nav", "#sign-out"]) $(id).hidden = false;
}

// ---- routing -----------------------------------------------------------------------------------------------------

function route() {
  const hash = location.hash || "#/loras";
  const signed = !!api.apiKey();
  const [, view, id] = hash.match(/^#\/(\w+)(?:\/([\w-]+))?/) ?? [];
  const name = !signed ? "signin" : ["new", "credits", "loras"].includes(view) ? view : "loras";
  for (const v of document.querySelectorAll(".view")) /** @type {HTMLElement} */ (v).hidden = v.id !== `view-${name}`;
  for (const a of document.querySelectorAll("#nav a")) current(a, a.getAttribute("href") === `#/${name}`);
  document.title = `${{ signin: "Sign in", new: "New LoRA", credits: "Credits", loras: "LoRAs" }[name]} · Likeness`;
  if (name === "loras") openLoras(id ?? null);
  if (name === "credits") openCredits();
  // Focus follows the view for keyboard and screen-reader users, except on a detail, which focuses its own title.
  if (name === "signin") $("#api-key").focus();
  else if (!(name === "loras" && id)) $(`#view-${name} h1`).focus();
}
addEventListener("hashchange", route);

/**
 * Marks the link of the page or item shown (an empty aria-current would mean "not current").
 * @param {Element} link
 * @param {boolean} on
 */
function current(link, on) {
  if (on) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
}

// ---- the LoRA list and live progress -----------------------------------------------------------------------------

/** @param {Lora} lora */
function update(lora) {
  const before = state.loras.get(lora.id);
  state.loras.set(lora.id, lora);
  if (before && before.status !== lora.status) announce(`${lora.name}: ${lora.status}. ${progressText(lora)}`);
  renderItem(lora);
  if (state.selected === lora.id && $("#detail").dataset.id === lora.id) renderDetail(lora, before?.status !== lora.status);
  if (before && before.status !== lora.status) refreshTeam().catch(() => {});
}

/** @param {Lora} lora */
function renderItem(lora) {
  const li = /** @type {HTMLElement | null} */ (document.getElementById(`item-${lora.id}`));
  if (!li) return;
  const a = /** @type {HTMLElement} */ (li.firstElementChild);
  current(a, state.selected === lora.id);
  fill(a,
    h("span", { class: "item-head" }, h("span", { class: "item-name" }, lora.name), badge(lora.status)),
    progressBar(lora),
    h("span", { class: "hint" }, lora.status === "READY" || lora.status === "ARCHIVED" ? `${lora.imageCount} photos · ${when(lora.createdAt)}` : progressText(lora)));
}

function renderList() {
  const list = $("#lora-list");
  list.replaceChildren(...state.order.map(id => h("li", { id: `item-${id}` }, h("a", { href: `#/loras/${id}` }))));
  for (const id of state.order) renderItem(/** @type {Lora} */ (state.loras.get(id)));
  $("#lora-empty").hidden = state.order.length > 0;
  $("#lora-more").hidden = !state.cursor;
}

/** @param {boolean} more */
async function loadLoras(more) {
  const archived = /** @type {HTMLInputElement} */ ($("#show-archived")).checked;
  const query = new URLSearchParams({ limit: "24" });
  if (archived) query.set("includeArchived", "true");
  if (more && state.cursor) query.set("cursor", state.cursor);
  const page = await api.get(`/v2/loras?${query}`);
  if (!more) state.order = [];
  for (const l of page.items) {
    state.loras.set(l.id, l);
    if (!state.order.includes(l.id)) state.order.push(l.id);
  }
  state.cursor = page.nextCursor;
  renderList();
  for (const l of page.items) if (!TERMINAL.includes(l.status)) watch(l.id);
}

const listBox = () => $("#view-loras .problem");
$("#show-archived").addEventListener("change", () => attempt(listBox(), () => loadLoras(false)));
$("#lora-more").addEventListener("click", () => attempt(listBox(), () => loadLoras(true)));

/**
 * Follows one LoRA until it is terminal: its event stream while few are open, else (or when the stream fails) polling.
 * @param {string} id
 */
async function watch(id) {
  if (state.watchers.has(id)) return;
  const control = new AbortController();
  state.watchers.set(id, control);
  const done = () => control.signal.aborted || TERMINAL.includes(state.loras.get(id)?.status ?? "");
  try {
    if (state.streams < MAX_STREAMS) {
      state.streams++;
      try {
        for await (const e of api.events(`/v2/loras/${id}/events`, control.signal))
          if (e.event === "lora") update(JSON.parse(e.data));
      } catch (e) {
        if (control.signal.aborted) return;
        if (e instanceof api.ProblemError && e.problem.status === 401) return signOut(e.problem);
      } finally {
        state.streams--;
      }
    }
    while (!done()) {
      await new Promise(r => setTimeout(r, POLL_MS));
      if (control.signal.aborted) return;
      try { update(await api.get(`/v2/loras/${id}`)); } catch (e) {
        if (e instanceof api.ProblemError && (e.problem.status === 401 || e.problem.status === 404)) return;
      }
    }
  } finally {
    state.watchers.delete(id);
  }
}

/** @param {string | null} id */
async function openLoras(id) {
  const previous = state.selected;
  state.selected = id;
  if (previous && previous !== id) renderItemIfKnown(previous);
  await attempt(listBox(), async () => {
    if (!state.order.length || !id) await loadLoras(false);
    const detail = $("#detail");
    if (!id) { detail.hidden = true; return; }
    const lora = state.loras.get(id) ?? await api.get(`/v2/loras/${id}`);
    state.loras.set(id, lora);
    renderItemIfKnown(id);
    buildDetail(lora);
    $("#detail-title").focus();
    if (!TERMINAL.includes(lora.status)) watch(id);
  });
}

const renderItemIfKnown = (/** @type {string} */ id) => { const l = state.loras.get(id); if (l) renderItem(l); };

// ---- one LoRA ----------------------------------------------------------------------------------------------------

/** @param {Lora} lora */
function buildDetail(lora) {
  const detail = $("#detail");
  detail.dataset.id = lora.id;
  detail.replaceChildren(
    h("h2", { id: "detail-title", tabindex: -1 }, lora.name),
    h("div", { id: "detail-summary" }),
    h("div", { class: "problem", role: "alert", hidden: true }),
    h("div", { id: "detail-actions", class: "row" }),
    h("section", { id: "generate", "aria-labelledby": "generate-title", hidden: true }),
    h("section", { id: "gallery-section", "aria-labelledby": "gallery-title", hidden: true },
      h("h3", { id: "gallery-title" }, "Gallery"), h("ul", { id: "gallery", class: "gallery" })),
    h("details", { id: "captions" }, h("summary", {}, "Captions"), h("div", { class: "slot" })),
    h("details", { id: "deliveries" }, h("summary", {}, "Webhook deliveries"), h("div", { class: "slot" })));
  // Deliveries go on after the terminal state (retries): opening the list reads it afresh.
  $("#deliveries").addEventListener("toggle", e => {
    const current = state.loras.get(lora.id);
    if (/** @type {HTMLDetailsElement} */ (e.target).open && current) loadDeliveries(current);
  });
  detail.hidden = false;
  renderDetail(lora, true);
  loadGallery(lora.id);
}

/**
 * @param {Lora} lora
 * @param {boolean} statusChanged
 */
function renderDetail(lora, statusChanged) {
  $("#detail-title").textContent = lora.name;
  fill($("#detail-summary"),
    h("p", { class: "status-line" }, badge(lora.status), " ", progressText(lora)),
    progressBar(lora),
    h("dl", { class: "facts" },
      fact("Subject", [lora.subjectKind, lora.gender, lora.ethnicity, lora.age].filter(Boolean).join(", ")),
      fact("Photos", String(lora.imageCount)),
      fact("Steps · rank", `${lora.steps} · ${lora.loraRank}`),
      fact("Trigger word", lora.triggerWord ?? "shown once READY"),
      fact("Created", when(lora.createdAt)),
      fact("Finished", when(lora.completedAt)),
      fact("Id", h("code", {}, lora.id))));
  if (!statusChanged) return;
  renderActions(lora);
  const generate = $("#generate");
  if (lora.status === "READY" && !generate.childElementCount) buildGenerate(generate, lora);
  generate.hidden = lora.status !== "READY";
  loadCaptions(lora);
  loadDeliveries(lora);
}

/**
 * @param {string} term
 * @param {string | Node} value
 */
const fact = (term, value) => h("div", {}, h("dt", {}, term), h("dd", {}, value));

const detailBox = () => $("#detail .problem");

/** @param {Lora} lora */
function renderActions(lora) {
  const buttons = [];
  if (!TERMINAL.includes(lora.status))
    buttons.push(h("button", { type: "button", class: "danger", onclick: () => act(lora, "cancel") }, "Cancel training"));
  if (lora.hasWeights)
    buttons.push(h("button", { type: "button", class: "secondary", onclick: () =>
      attempt(detailBox(), () => api.download(`/v2/loras/${lora.id}/weights`, `${lora.id}.safetensors`)) }, "Download adapter"));
  if (lora.status !== "ARCHIVED")
    buttons.push(h("button", { type: "button", class: "secondary", onclick: () => act(lora, "archive") }, "Archive"));
  $("#detail-actions").replaceChildren(...buttons);
}

/**
 * @param {Lora} lora
 * @param {"cancel" | "archive"} action
 */
async function act(lora, action) {
  const question = action === "cancel"
    ? `Cancel the training of “${lora.name}”? It ends FAILED and its credits are refunded.`
    : `Archive “${lora.name}”? It can no longer generate${TERMINAL.includes(lora.status) ? "" : "; the training is cancelled first"}.`;
  if (!confirm(question)) return;
  await attempt(detailBox(), async () => {
    const result = action === "cancel"
      ? await api.call("POST", `/v2/loras/${lora.id}/cancel`)
      : await api.call("DELETE", `/v2/loras/${lora.id}`);
    update(result);
    $("#detail-title").focus();
  });
}

/** @param {Lora} lora */
async function loadCaptions(lora) {
  const slot = $("#captions .slot");
  const details = /** @type {HTMLDetailsElement} */ ($("#captions"));
  if (lora.status === "PENDING" || lora.status === "UPLOADING") {
    slot.replaceChildren(h("p", { class: "hint" }, "Listed once the photos are captioned and the dataset is stored."));
    return;
  }
  try {
    const page = await api.get(`/v2/loras/${lora.id}/captions`);
    /** @type {HTMLElement} */ (details.firstElementChild).textContent = `Captions (${page.items.length})`;
    slot.replaceChildren(table(["Photo", "Caption", "Source", "Size"], page.items.map((/** @type {any} */ c) =>
      [c.image, c.caption, c.source, h("span", { class: "num" }, `${c.width}×${c.height}`)])));
  } catch (e) {
    // FAILED, cancelled and purged LoRAs have no dataset any more: the API's own words say so.
    explain(slot, e);
  }
}

/**
 * A table with column headings, in a wrapper that scrolls sideways on a narrow screen.
 * @param {string[]} headings
 * @param {(string | number | Node)[][]} rows
 */
const table = (headings, rows) => h("div", { class: "table-wrap" }, h("table", {},
  h("thead", {}, h("tr", {}, headings.map(t => h("th", { scope: "col" }, t)))),
  h("tbody", {}, rows.map(cells => h("tr", {}, cells.map(c => h("td", {}, c)))))));

/**
 * Puts the API's word for why a part of the page has nothing to show in its place.
 * @param {HTMLElement} slot
 * @param {unknown} e
 */
function explain(slot, e) {
  if (!(e instanceof api.ProblemError)) throw e;
  slot.replaceChildren(h("p", { class: "hint" }, e.problem.detail ?? e.problem.title));
}

/** @param {Lora} lora */
async function loadDeliveries(lora) {
  const slot = $("#deliveries .slot");
  try {
    const page = await api.get(`/v2/loras/${lora.id}/webhook-deliveries`);
    /** @type {HTMLElement} */ ($("#deliveries summary")).textContent = `Webhook deliveries (${page.items.length})`;
    slot.replaceChildren(page.items.length === 0
      ? h("p", { class: "hint" }, "None: a LoRA started with a webhook URL is reported there when it is READY or FAILED.")
      : table(["When", "Event", "Attempt", "Result", "Target"], page.items.map((/** @type {any} */ d) => [
        when(d.attemptedAt), d.event, d.attempt,
        d.succeeded ? `delivered (${d.statusCode})` : `failed: ${d.error ?? d.statusCode}${d.nextAttemptAt ? `; next try ${when(d.nextAttemptAt)}` : ""}`,
        h("code", {}, d.url)])));
  } catch (e) {
    explain(slot, e);
  }
}

// ---- generate and the gallery ------------------------------------------------------------------------------------

const RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3"];
const FORMATS = ["png", "jpg", "webp"];

/**
 * A number field with its label.
 * @param {string} name
 * @param {string} label
 * @param {Record<string, any>} attrs
 */
const numberField = (name, label, attrs) => h("div", {},
  h("label", { for: `g-${name}` }, label), h("input", { id: `g-${name}`, name, type: "number", inputmode: "decimal", ...attrs }));

/**
 * @param {string} name
 * @param {string} label
 * @param {string[]} options
 */
const selectField = (name, label, options) => h("div", {},
  h("label", { for: `g-${name}` }, label), h("select", { id: `g-${name}`, name }, options.map(o => h("option", {}, o))));

/**
 * @param {HTMLElement} section
 * @param {Lora} lora
 */
function buildGenerate(section, lora) {
  const status = h("p", { class: "hint", role: "status" });
  const form = h("form", { class: "generate", novalidate: true },
    h("label", { for: "g-prompt" }, "Prompt"),
    h("textarea", { id: "g-prompt", name: "prompt", rows: 3, maxlength: 2000, required: true, "aria-describedby": "g-prompt-hint" }),
    h("p", { id: "g-prompt-hint", class: "hint" }, `The trigger word ${lora.triggerWord} is put in front unless the prompt already holds it.`),
    h("div", { class: "grid" },
      selectField("aspect_ratio", "Aspect ratio", RATIOS),
      numberField("num_outputs", "Number of images", { min: 1, max: 4, value: 1 }),
      numberField("seed", "Seed (optional)", { step: 1, placeholder: "random" }),
      numberField("lora_strength", "LoRA strength", { min: 0, max: 1.5, step: 0.05, value: 1 }),
      numberField("guidance_scale", "Guidance", { min: 1, max: 10, step: 0.5, value: 3.5 }),
      numberField("num_inference_steps", "Steps", { min: 4, max: 50, value: 28 }),
      selectField("output_format", "Format", FORMATS)),
    h("div", { class: "problem", role: "alert", hidden: true }),
    h("button", { type: "submit" }, "Generate"), " ",
    h("span", { class: "hint" }, "2 credits per image."),
    status);
  form.addEventListener("submit", async e => {
    e.preventDefault();
    const data = new FormData(/** @type {HTMLFormElement} */ (form));
    const value = (/** @type {string} */ k) => String(data.get(k) ?? "").trim();
    /** @type {Record<string, unknown>} */
    const params = { loraId: lora.id, aspect_ratio: value("aspect_ratio"), output_format: value("output_format") };
    for (const k of ["num_outputs", "lora_strength", "guidance_scale", "num_inference_steps", "seed"])
      if (value(k) !== "") params[k] = Number(value(k));
    const button = /** @type {HTMLButtonElement} */ ($("button[type=submit]", form));
    button.disabled = true;
    status.textContent = `Generating ${params.num_outputs ?? 1} image(s)…`;
    await attempt($(".problem", form), async () => {
      let generation = await api.call("POST", "/v2/images/generate", { model: "flux-lora", prompt: value("prompt"), fluxLoraParams: params });
      while (generation.status === "PENDING" || generation.status === "RUNNING") {
        await new Promise(r => setTimeout(r, 1000));
        generation = await api.get(`/v2/images/${generation.id}`);
      }
      remember(lora.id, generation.id);
      addToGallery(generation);
      status.textContent = generation.status === "COMPLETED"
        ? `${generation.images.length} image(s) made, ${generation.creditsCharged} credits.` : `The generation failed: ${generation.error?.message ?? ""}`;
      refreshTeam().catch(() => {});
    });
    if (!$(".problem", form).hidden) status.textContent = "";
    button.disabled = false;
  });
  section.replaceChildren(h("h3", { id: "generate-title" }, "Generate"), form);
}

const galleryKey = (/** @type {string} */ loraId) => `likeness.generations.${loraId}`;

/**
 * Keeps this tab's generation ids per LoRA, so that the gallery comes back with fresh signed links.
 * @param {string} loraId
 * @param {string} generationId
 */
function remember(loraId, generationId) {
  const ids = JSON.parse(sessionStorage.getItem(galleryKey(loraId)) ?? "[]");
  sessionStorage.setItem(galleryKey(loraId), JSON.stringify([generationId, ...ids].slice(0, 12)));
}

/** @param {string} loraId */
async function loadGallery(loraId) {
  /** @type {string[]} */
  const ids = JSON.parse(sessionStorage.getItem(galleryKey(loraId)) ?? "[]");
  for (const id of ids.slice().reverse()) {
    try { addToGallery(await api.get(`/v2/images/${id}`)); } catch { /* gone: skip it */ }
  }
}

/**
 * Puts a generation's images first in the gallery, each with its download link.
 * @param {any} generation
 */
function addToGallery(generation) {
  const gallery = $("#gallery");
  if (!gallery) return;
  $("#gallery-section").hidden = false;
  const total = generation.images.length;
  const items = generation.images.map((/** @type {any} */ img, /** @type {number} */ i) => h("li", {},
    h("figure", {},
      h("a", { href: img.url, target: "_blank", rel: "noopener" },
        h("img", { src: img.url, width: img.width, height: img.height, alt: `Image ${i + 1} of ${total}: ${generation.prompt}` })),
      h("figcaption", {}, `seed ${img.seed} · ${img.width}×${img.height} · `,
        h("a", { href: img.url, download: `${generation.id}-${i + 1}.${img.contentType.split("/")[1]}` }, `Download ${img.contentType.split("/")[1].toUpperCase()}`)))));
  gallery.prepend(...items);
}

// ---- new LoRA ----------------------------------------------------------------------------------------------------

const newBox = () => $("#new-form .problem");
// Photos are inspected one batch after another; a submit waits for the batches still being inspected.
let adding = Promise.resolve();
/** @param {FileList | File[]} files */
const addPhotos = files => (adding = adding.then(() => inspectPhotos(Array.from(files))));

/** @param {File[]} files */
async function inspectPhotos(files) {
  clearProblem(newBox());
  /** @type {Problem[]} */
  const refused = [];
  for (const file of files) {
    const copy = await photos.duplicateOf(state.photos, file);
    if (copy >= 0) {
      refused.push(photos.refusal("duplicate_image", `'${file.name}' is identical to '${state.photos[copy].file.name}'; upload each photo once.`));
      continue;
    }
    const result = await photos.inspect(file);
    if ("file" in result) state.photos.push(result); else refused.push(result);
  }
  renderPhotos();
  if (refused.length) showProblem(newBox(), refused);
}

function renderPhotos() {
  const list = $("#previews");
  list.replaceChildren(...state.photos.map((p, i) => h("li", {},
    h("img", { src: p.url, alt: p.file.name, width: p.width, height: p.height }),
    h("span", { class: "preview-name" }, p.file.name),
    h("span", { class: "hint" }, `${p.width}×${p.height} · ${photos.formatBytes(p.file.size)}`),
    h("button", { type: "button", class: "quiet", "aria-label": `Remove ${p.file.name}`, onclick: () => removePhoto(i) }, "Remove"))));
  const n = state.photos.length;
  const bytes = state.photos.reduce((s, p) => s + p.file.size, 0);
  $("#photo-summary").textContent = n === 0 ? "No photos yet."
    : `${n} photo${n === 1 ? "" : "s"}, ${photos.formatBytes(bytes)}` + (n < photos.MIN_PHOTOS ? ` — add at least ${photos.MIN_PHOTOS - n} more.`
      : n > photos.MAX_PHOTOS ? ` — remove at least ${n - photos.MAX_PHOTOS}.` : " — ready.");
}

/** @param {number} index */
function removePhoto(index) {
  URL.revokeObjectURL(state.photos[index].url);
  state.photos.splice(index, 1);
  renderPhotos();
  const buttons = document.querySelectorAll("#previews button");
  /** @type {HTMLElement} */ (buttons[Math.min(index, buttons.length - 1)] ?? $("#choose")).focus();
}

$("#choose").addEventListener("click", () => $("#photos").click());
$("#photos").addEventListener("change", e => {
  const input = /** @type {HTMLInputElement} */ (e.target);
  addPhotos(input.files ?? []).finally(() => { input.value = ""; });
});
const drop = $("#drop");
for (const type of ["dragenter", "dragover"])
  drop.addEventListener(type, e => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", e => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer) addPhotos(e.dataTransfer.files);
});

const kind = /** @type {HTMLSelectElement} */ ($("#f-kind"));
const personFields = () => {
  for (const el of document.querySelectorAll("[data-person]")) /** @type {HTMLElement} */ (el).hidden = kind.value !== "person";
};
kind.addEventListener("change", personFields);
personFields();

$("#new-form").addEventListener("submit", async e => {
  e.preventDefault();
  const form = /** @type {HTMLFormElement} */ (e.target);
  const box = newBox();
  await adding;
  const problem = photos.checkSet(state.photos);
  if (problem) { showProblem(box, problem); return; }
  const data = new FormData();
  for (const [k, v] of new FormData(form)) {
    if (typeof v !== "string" || v.trim() === "" || (kind.value !== "person" && (k === "gender" || k === "ethnicity"))) continue;
    data.append(k, v.trim());
  }
  for (const p of state.photos) data.append("images", p.file, p.file.name);
  const button = /** @type {HTMLButtonElement} */ ($("#start"));
  const bar = /** @type {HTMLProgressElement} */ ($("#upload-progress"));
  button.disabled = true;
  $("#upload-state").hidden = false;
  bar.value = 0;
  await attempt(box, async () => {
    const created = await api.upload("/v2/loras", data, (sent, total) => {
      bar.value = Math.round(100 * sent / total);
      $("#upload-percent").textContent = `${bar.value} %`;
    });
    announce(`Upload complete: ${created.imageCount} photos. Training is queued.`);
    for (const p of state.photos) URL.revokeObjectURL(p.url);
    state.photos = [];
    renderPhotos();
    form.reset();
    personFields();
    state.order = [];
    refreshTeam().catch(() => {});
    location.hash = `#/loras/${created.id}`;
  });
  button.disabled = false;
  $("#upload-state").hidden = true;
});

// ---- credits -----------------------------------------------------------------------------------------------------

const creditsBox = () => $("#view-credits .problem");

async function openCredits() {
  await attempt(creditsBox(), async () => {
    const team = await refreshTeam();
    $("#team").replaceChildren(
      fact("Team", team.name), fact("Credits", number(team.credits)),
      fact("Active trainings", `${team.activeTrainings} of ${team.maxConcurrentTrainings}`));
    $("#ledger").replaceChildren();
    state.ledgerCursor = null;
    await loadLedger();
  });
}

async function loadLedger() {
  const query = new URLSearchParams({ limit: "50" });
  if (state.ledgerCursor) query.set("cursor", state.ledgerCursor);
  const page = await api.get(`/v2/team/ledger?${query}`);
  $("#ledger").append(...page.items.map((/** @type {any} */ e) => h("tr", {},
    h("td", {}, when(e.createdAt)), h("td", {}, e.reason.replaceAll("_", " ")),
    h("td", { class: `num ${e.amount < 0 ? "minus" : "plus"}` }, (e.amount > 0 ? "+" : "") + number(e.amount)),
    h("td", { class: "num" }, number(e.balanceAfter)),
    h("td", {}, e.loraId ? h("a", { href: `#/loras/${e.loraId}` }, h("code", {}, e.loraId)) : e.generationId ? h("code", {}, e.generationId) : "—"))));
  state.ledgerCursor = page.nextCursor;
  $("#ledger-more").hidden = !page.nextCursor;
}
$("#ledger-more").addEventListener("click", () => attempt(creditsBox(), loadLedger));

// ---- start -------------------------------------------------------------------------------------------------------

if (api.apiKey()) {
  signedIn();
  refreshTeam().catch(e => { if (e instanceof api.ProblemError && e.problem.status === 401) signOut(e.problem); });
}
route();
